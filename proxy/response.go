package proxy

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strings"

	"github.com/sluicehq/sluice/exchange"
	"golang.org/x/net/http/httpguts"
)

// An own HTTP/1.1 response-head parser: net/http's ReadResponse costs a
// dozen allocations per response (textproto reader, per-value strings,
// Response, body wrappers). Here the whole head becomes one string, keys
// that are already canonical and all values are substrings of it, and the
// body readers live in the pooled per-request state. Framing follows RFC
// 9112 §6.3 strictly; anything ambiguous is an error (502), never a guess.

// maxResponseHead bounds an upstream's response head.
const maxResponseHead = 256 << 10

// maxLeadingBlanks is how many blank lines may precede a status line.
const maxLeadingBlanks = 4

var errBadResponse = badResponse("malformed status line or header")

// badResponse is the error for an upstream answer that breaks HTTP/1.1.
func badResponse(what string) error {
	return &exchange.Error{Status: http.StatusBadGateway, Msg: "upstream sent an invalid response", Err: errors.New(what)}
}

// respHead is a parsed response head.
type respHead struct {
	status  int
	header  http.Header
	trailer http.Header // declared trailer names, nil when none
	mode    bodyMode
	length  int64 // for bodyFixed
	close   bool  // the upstream will close the connection after this body
}

type bodyMode uint8

const (
	bodyNone    bodyMode = iota
	bodyFixed            // Content-Length
	bodyChunked          // Transfer-Encoding: chunked
	bodyEOF              // until the upstream closes
)

// readResponseHead reads and parses one response head. scratch is reused
// between calls to collect the head's lines.
func readResponseHead(br *bufio.Reader, scratch *[]byte, method string, h *respHead) error {
	buf := (*scratch)[:0]
	lines, blanks := 0, 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if err == bufio.ErrBufferFull {
				return badResponse("upstream response header line too long")
			}
			if err == io.EOF && len(buf)+len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if len(buf) == 0 && (len(line) == 2 && line[0] == '\r' || len(line) == 1) {
			// Tolerate a few stray blank lines before the status line, as
			// the request side does; an endless run is not an answer.
			if blanks++; blanks > maxLeadingBlanks {
				return badResponse("blank lines instead of a status line")
			}
			continue
		}
		buf = append(buf, line...)
		lines++
		if len(line) == 2 && line[0] == '\r' || len(line) == 1 {
			break
		}
		if len(buf) > maxResponseHead {
			return badResponse("upstream response header too large")
		}
	}
	*scratch = buf
	block := string(buf)

	// Status line: HTTP/1.x SP 3DIGIT [SP reason]
	i := strings.IndexByte(block, '\n')
	sl := strings.TrimSuffix(block[:i], "\r")
	block = block[i+1:]
	if len(sl) < 12 || sl[:7] != "HTTP/1." || (sl[7] != '0' && sl[7] != '1') || sl[8] != ' ' ||
		(len(sl) > 12 && sl[12] != ' ') {
		return errBadResponse
	}
	hdr := h.header // a map kept from an earlier answer, cleared
	*h = respHead{}
	for _, c := range sl[9:12] {
		if c < '0' || c > '9' {
			return errBadResponse
		}
		h.status = h.status*10 + int(c-'0')
	}
	if h.status < 100 {
		return errBadResponse
	}
	http10 := sl[7] == '0'

	if hdr != nil {
		clear(hdr) // a 1xx answer read into it before
		h.header = hdr
	} else {
		h.header = make(http.Header, lines)
	}
	vals := make([]string, 0, lines) // one backing array for single values
	for len(block) > 0 {
		i := strings.IndexByte(block, '\n')
		line := strings.TrimSuffix(block[:i], "\r")
		block = block[i+1:]
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return badResponse("obsolete line folding in upstream response")
		}
		c := strings.IndexByte(line, ':')
		if c <= 0 {
			return errBadResponse
		}
		k, v := line[:c], trimOWS(line[c+1:])
		if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
			return errBadResponse
		}
		k = canonicalKey(k)
		if old := h.header[k]; old != nil {
			h.header[k] = append(old, v)
		} else {
			vals = append(vals, v)
			h.header[k] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
	}

	conn := h.header["Connection"]
	h.close = httpguts.HeaderValuesContainsToken(conn, "close") ||
		http10 && !httpguts.HeaderValuesContainsToken(conn, "keep-alive")

	// RFC 9112 §6.3: no body for HEAD, 1xx, 204, 304.
	if method == http.MethodHead || h.status < 200 || h.status == 204 || h.status == 304 {
		h.mode = bodyNone
		return nil
	}
	te, hasTE := h.header["Transfer-Encoding"]
	cl, hasCL := h.header["Content-Length"]
	switch {
	case hasTE:
		if len(te) != 1 || !strings.EqualFold(strings.TrimSpace(te[0]), "chunked") || http10 {
			return badResponse("unsupported transfer-encoding from upstream")
		}
		// TE overrides CL; a message with both is a smuggling smell, so the
		// connection is not reused (RFC 9112 §6.3 item 3).
		if hasCL {
			h.close = true
		}
		delete(h.header, "Content-Length")
		h.mode = bodyChunked
	case hasCL:
		n := int64(-1)
		for _, v := range cl {
			m, ok := parseLength(v)
			if !ok || (n >= 0 && m != n) {
				return badResponse("invalid content-length from upstream")
			}
			n = m
		}
		h.mode, h.length = bodyFixed, n
		if len(cl) > 1 {
			h.header["Content-Length"] = cl[:1]
		}
	default:
		h.mode = bodyEOF
		h.close = true
	}
	if tr := h.header["Trailer"]; tr != nil && h.mode == bodyChunked {
		h.trailer = http.Header{}
		for _, v := range tr {
			for _, k := range strings.Split(v, ",") {
				if k = strings.TrimSpace(k); k != "" {
					h.trailer[http.CanonicalHeaderKey(k)] = nil
				}
			}
		}
		delete(h.header, "Trailer")
	}
	return nil
}

func parseLength(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// canonicalKey returns k in canonical form without allocating when it is
// already canonical (what nearly every server sends).
func canonicalKey(k string) string {
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return textproto.CanonicalMIMEHeaderKey(k)
		}
		upper = c == '-'
	}
	return k
}

// fixedReader reads exactly n bytes of a Content-Length body.
type fixedReader struct {
	br *bufio.Reader
	n  int64
}

func (r *fixedReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	n, err := r.br.Read(p)
	r.n -= int64(n)
	if r.n <= 0 {
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// chunkedBody reads a chunked body and then its trailer section.
type chunkedBody struct {
	br      *bufio.Reader
	cr      io.Reader
	trailer http.Header
}

func (r *chunkedBody) Read(p []byte) (int, error) {
	if r.cr == nil {
		r.cr = httputil.NewChunkedReader(r.br)
	}
	n, err := r.cr.Read(p)
	if err == io.EOF {
		// The trailer section: usually just the final CRLF.
		if b, perr := r.br.Peek(2); perr == nil && b[0] == '\r' && b[1] == '\n' {
			r.br.Discard(2)
			return n, io.EOF
		}
		tr, terr := readTrailer(r.br)
		if terr != nil {
			return n, io.ErrUnexpectedEOF
		}
		if r.trailer == nil {
			r.trailer = http.Header{}
		}
		for k, vv := range tr {
			r.trailer[k] = vv
		}
	}
	return n, err
}

// readTrailer reads a trailer section within maxResponseHead bytes.
func readTrailer(br *bufio.Reader) (http.Header, error) {
	h := http.Header{}
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		total += len(line)
		if total > maxResponseHead {
			return nil, errors.New("trailer too large")
		}
		s := strings.TrimRight(string(line), "\r\n")
		if s == "" {
			return h, nil
		}
		k, v, ok := strings.Cut(s, ":")
		v = strings.TrimSpace(v)
		if !ok || !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
			return nil, errors.New("malformed trailer")
		}
		h.Add(k, v)
	}
}
