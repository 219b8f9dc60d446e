package actions

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/policy"
)

func TestCompressResponse(t *testing.T) {
	big := strings.Repeat("compressible text ", 200)
	tests := []struct {
		name, config, accept, body string
		res                        []string // header pairs
		status                     int
		want                       string // coding, "" for none
		already                    bool
	}{
		{"gzip", ``, "gzip", big, []string{"Content-Type", "application/json"}, 200, "gzip", false},
		{"q-values", ``, "gzip;q=0.5, br;q=1", big, nil, 200, "br", false},
		{"zstd", `algorithms: [zstd, gzip]`, "gzip, zstd", big, nil, 200, "zstd", false},
		{"not allowed", `algorithms: [br]`, "gzip", big, nil, 200, "", false},
		{"no accept-encoding", ``, "", big, nil, 200, "", false},
		{"already encoded", ``, "gzip", big, []string{"Content-Encoding", "br"}, 200, "", true},
		{"too small", ``, "gzip", "tiny", nil, 200, "", false},
		{"image", ``, "gzip", big, []string{"Content-Type", "image/png"}, 200, "", false},
		{"svg", ``, "gzip", big, []string{"Content-Type", "image/svg+xml"}, 200, "gzip", false},
		{"no content", ``, "gzip", big, nil, 204, "", false},
		{"partial", ``, "gzip", big, nil, 206, "", false},
		{"no-transform", ``, "gzip", big, []string{"Cache-Control", "public, no-transform"}, 200, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustBuild(t, "compress-response", policy.OnHTTPResponse, tt.config)
			var hdr []string
			if tt.accept != "" {
				hdr = []string{"Accept-Encoding", tt.accept}
			}
			s := withResponse(newState(t, policy.OnHTTPRequest, "GET", "https://example.com/api/x", "127.0.0.1:1", hdr...),
				tt.status, tt.body, append([]string{"Content-Length", "1", "ETag", `"v1"`}, tt.res...)...)
			if err := a.Run(s); err != nil {
				t.Fatal(err)
			}
			r := s.X.Res
			if got := result(t, s, "actions.ngrok.compress.negotiated_algorithm"); got != tt.want {
				t.Errorf("negotiated_algorithm = %v, want %q", got, tt.want)
			}
			if got := result(t, s, "actions.ngrok.compress.already_compressed"); got != tt.already {
				t.Errorf("already_compressed = %v", got)
			}
			if tt.want == "" {
				if r.Header.Get("Content-Encoding") != strings.Join(headerOr(tt.res, "Content-Encoding"), "") || r.ContentLength != int64(len(tt.body)) {
					t.Errorf("response changed: %v %d", r.Header, r.ContentLength)
				}
				return
			}
			if r.Header.Get("Content-Encoding") != tt.want || r.ContentLength != -1 || r.Header.Get("Content-Length") != "" ||
				r.Header.Get("Vary") != "Accept-Encoding" || r.Header.Get("ETag") != `W/"v1"` {
				t.Errorf("headers %v, length %d", r.Header, r.ContentLength)
			}
			got, err := io.ReadAll(decoder(t, tt.want, r.Body))
			if err != nil || string(got) != tt.body {
				t.Errorf("body round trip: %v, %d bytes", err, len(got))
			}
			r.Body.Close()
		})
	}
}

func headerOr(pairs []string, name string) []string {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i] == name {
			return []string{pairs[i+1]}
		}
	}
	return nil
}

func TestCompressResponseConfigErrors(t *testing.T) {
	for _, tt := range []struct{ config, want string }{
		{`algorithms: []`, "at least one algorithm"},
		{`algorithms: [gzip, lz4]`, `algorithms[1]: "lz4" is not supported`},
		{`algorithms: [gzip, GZIP]`, "listed twice"},
		{`level: 9`, `unknown field "level"`},
	} {
		_, err := build(t, "compress-response", policy.OnHTTPResponse, tt.config)
		wantErr(t, err, tt.want)
	}
	// compress is accepted (ngrok's default list has it) but never produced.
	mustBuild(t, "compress-response", policy.OnHTTPResponse, `algorithms: [gzip, deflate, br, compress]`)
}

// TestCompressResponseStreamsOverHTTP serves a compressed server-sent event
// stream through a real listener and reads the first event while the
// upstream still holds the stream open.
func TestCompressResponseStreamsOverHTTP(t *testing.T) {
	a := mustBuild(t, "compress-response", policy.OnHTTPResponse, `algorithms: [gzip]`)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pr, pw := io.Pipe()
		go func() {
			pw.Write([]byte("data: one\n\n"))
			<-release
			pw.Write([]byte("data: two\n\n"))
			pw.Close()
		}()
		s := newState(t, policy.OnHTTPRequest, r.Method, "http://"+r.Host+r.URL.RequestURI(), "127.0.0.1:1",
			"Accept-Encoding", r.Header.Get("Accept-Encoding"))
		withResponse(s, 200, "", "Content-Type", "text/event-stream")
		s.X.Res.Body, s.X.Res.ContentLength = pr, -1
		if err := a.Run(s); err != nil {
			t.Error(err)
			return
		}
		for k, v := range s.X.Res.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(s.X.Res.StatusCode)
		buf := make([]byte, 4096)
		for {
			n, err := s.X.Res.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				w.(http.Flusher).Flush()
			}
			if err != nil {
				s.X.Res.Body.Close()
				return
			}
		}
	}))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/events", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	res, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding = %q", res.Header.Get("Content-Encoding"))
	}
	br := bufio.NewReader(decoder(t, "gzip", res.Body))
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event: %q %v", line, err)
	}
	close(release)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "\ndata: two\n\n" {
		t.Fatalf("rest: %q %v", rest, err)
	}
}

func TestCompressibleType(t *testing.T) {
	for ct, want := range map[string]bool{
		"":                          true,
		"text/html; charset=utf-8":  true,
		"application/json":          true,
		"application/vnd.api+json":  true,
		"image/svg+xml":             true,
		"image/jpeg":                false,
		"video/mp4":                 false,
		"audio/ogg":                 false,
		"font/woff2":                false,
		"font/ttf":                  true,
		"application/zip":           false,
		"application/octet-stream":  false,
		"application/grpc":          false,
		"not a / valid; media type": true,
	} {
		if got := compressibleType(ct); got != want {
			t.Errorf("compressibleType(%q) = %v, want %v", ct, got, want)
		}
	}
}
