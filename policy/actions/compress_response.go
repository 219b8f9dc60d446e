package actions

import (
	"mime"
	"net/http"
	"strings"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/policy"
)

// CompressResponse is the `compress-response` action: it compresses the
// response body on the fly with the best coding the client accepts.
//
//	actions:
//	  - type: compress-response
//	    config:
//	      algorithms: [br, gzip]
//
// algorithms (list, default [gzip, deflate, br, zstd, compress]): the codings
// that may be used, in order of preference for ties; each at most once. br,
// deflate, gzip and zstd are produced; compress (LZW) is accepted for
// compatibility with ngrok policies but never chosen.
//
// The coding is negotiated from the request's Accept-Encoding with q-values
// (RFC 9110: the highest q wins, `*` covers the rest, q=0 refuses); without
// Accept-Encoding, or when nothing matches, the response is left alone. It is
// also left alone when it already has a Content-Encoding, has no body (HEAD,
// 1xx, 204, 304), is partial (206), carries Cache-Control: no-transform, is
// shorter than 1 KiB when its length is known, or has a type that is already
// compressed (images other than SVG, audio, video, archives, fonts in
// WOFF/WOFF2).
//
// The body is compressed as it streams, never buffered whole; a chunk the
// upstream flushes (server-sent events) reaches the client at once. The
// action removes Content-Length, sets Content-Encoding, adds
// Vary: Accept-Encoding and weakens a strong ETag. Result variables:
// actions.ngrok.compress.negotiated_algorithm and
// actions.ngrok.compress.already_compressed.
type CompressResponse struct {
	Algorithms []string `yaml:"algorithms"`
}

// minCompressLength: below this, headers and framing outweigh the savings.
const minCompressLength = 1024

var allAlgorithms = []string{"gzip", "deflate", "br", "zstd", "compress"}

func newCompressResponse(c *policy.Config) (policy.Action, error) {
	a := &CompressResponse{}
	if err := c.Decode(a); err != nil {
		return nil, err
	}
	if !hasField(c.Node, "algorithms") {
		a.Algorithms = append([]string(nil), allAlgorithms...) // lowered below: not the shared slice
	}
	n := fieldNode(c.Node, "algorithms")
	if len(a.Algorithms) == 0 {
		return nil, c.Errorf(n, "algorithms: at least one algorithm is required")
	}
	seen := map[string]bool{}
	for i, alg := range a.Algorithms {
		item := n
		if n != nil && i < len(n.Content) {
			item = n.Content[i]
		}
		alg = strings.ToLower(strings.TrimSpace(alg))
		a.Algorithms[i] = alg
		if codings[alg] == nil && alg != "compress" {
			return nil, c.Errorf(item, "algorithms[%d]: %q is not supported (want br, deflate, gzip, zstd or compress)", i, alg)
		}
		if seen[alg] {
			return nil, c.Errorf(item, "algorithms[%d]: %q is listed twice", i, alg)
		}
		seen[alg] = true
	}
	return a, nil
}

// Run wraps the response body in a compressor when it is worth it.
func (a *CompressResponse) Run(s *policy.State) error {
	if s.X == nil || s.X.Req == nil || s.X.Res == nil {
		return nil
	}
	req, res := s.X.Req, s.X.Res
	if res.Header == nil {
		res.Header = http.Header{}
	}
	if ce := res.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		s.SetResult("compress", map[string]any{"already_compressed": true, "negotiated_algorithm": ""})
		return nil
	}
	coding := negotiate(req.Header.Values("Accept-Encoding"), a.Algorithms)
	if coding == "" || !compressible(req, res) {
		s.SetResult("compress", map[string]any{"already_compressed": false, "negotiated_algorithm": ""})
		return nil
	}
	res.Body = newCompressBody(res.Body, coding)
	res.ContentLength = -1
	res.Header.Del("Content-Length")
	res.Header.Set("Content-Encoding", coding)
	res.Header.Add("Vary", "Accept-Encoding")
	if et := res.Header.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
		// The compressed bytes differ from the identity ones, so a strong
		// validator would lie; a weak one still matches semantically.
		res.Header.Set("ETag", "W/"+et)
	}
	res.Header.Del("Accept-Ranges") // ranges of the compressed stream are not served
	s.SetResult("compress", map[string]any{"already_compressed": false, "negotiated_algorithm": coding})
	return nil
}

// compressible reports whether compressing res makes sense.
func compressible(req *exchange.Request, res *exchange.Response) bool {
	if res.Body == nil || res.Body == http.NoBody || req.Method == http.MethodHead {
		return false
	}
	switch {
	case res.StatusCode < 200, res.StatusCode == http.StatusNoContent,
		res.StatusCode == http.StatusNotModified, res.StatusCode == http.StatusPartialContent:
		return false
	}
	if res.ContentLength >= 0 && res.ContentLength < minCompressLength {
		return false
	}
	if res.Header.Get("Content-Range") != "" {
		return false
	}
	for _, cc := range res.Header.Values("Cache-Control") {
		if strings.Contains(strings.ToLower(cc), "no-transform") {
			return false
		}
	}
	return compressibleType(res.Header.Get("Content-Type"))
}

// compressibleType is false for media types that are already compressed. An
// unknown or missing type is compressed: most such bodies are text.
func compressibleType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return true
	}
	major, minor, _ := strings.Cut(mt, "/")
	switch major {
	case "image":
		return minor == "svg+xml" || minor == "bmp" || minor == "x-icon" || minor == "vnd.microsoft.icon"
	case "video", "audio":
		return false
	case "font":
		return minor != "woff" && minor != "woff2"
	case "application":
		switch minor {
		case "zip", "gzip", "x-gzip", "zstd", "x-bzip2", "x-xz", "x-7z-compressed",
			"x-rar-compressed", "vnd.rar", "x-compress", "brotli", "pdf", "octet-stream",
			"vnd.android.package-archive", "java-archive", "x-tar+gzip", "grpc":
			return false
		}
	}
	return true
}

func init() {
	policy.Register(policy.Spec{
		Type:   "compress-response",
		Phases: []policy.Phase{policy.OnHTTPResponse},
		New:    newCompressResponse,
	})
}

var _ policy.Action = (*CompressResponse)(nil)
