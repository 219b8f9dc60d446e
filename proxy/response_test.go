package proxy

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestReadResponseHead(t *testing.T) {
	for _, tc := range []struct {
		name, in, method string
		status           int
		mode             bodyMode
		length           int64
		close            bool
		body             string
		err              bool
	}{
		{name: "fixed", in: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcXX", status: 200, mode: bodyFixed, length: 3, body: "abc"},
		{name: "no reason", in: "HTTP/1.1 204\r\n\r\n", status: 204, mode: bodyNone},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nXX", status: 200, mode: bodyChunked, body: "abcde"},
		{name: "te and cl", in: "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n", status: 200, mode: bodyChunked, close: true, body: "a"},
		{name: "until close", in: "HTTP/1.1 200 OK\r\n\r\nall of it", status: 200, mode: bodyEOF, close: true, body: "all of it"},
		{name: "http/1.0", in: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", status: 200, mode: bodyFixed, length: 1, close: true, body: "x"},
		{name: "http/1.0 keep-alive", in: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", status: 200, mode: bodyFixed, length: 1, body: "x"},
		{name: "close", in: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", status: 200, mode: bodyFixed, close: true},
		{name: "head", method: "HEAD", in: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", status: 200, mode: bodyNone},
		{name: "304", in: "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", status: 304, mode: bodyNone},
		{name: "same cl twice", in: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", status: 200, mode: bodyFixed, length: 1, body: "x"},
		{name: "lf only", in: "HTTP/1.1 200 OK\nContent-Length: 1\n\nx", status: 200, mode: bodyFixed, length: 1, body: "x"},
		{name: "differing cl", in: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", err: true},
		{name: "negative cl", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", err: true},
		{name: "gzip te", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", err: true},
		{name: "obs-fold", in: "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n\r\n", err: true},
		{name: "bad status", in: "HTTP/1.1 2x0 OK\r\n\r\n", err: true},
		{name: "not http", in: "SSH-2.0-OpenSSH\r\n\r\n", err: true},
		{name: "space in name", in: "HTTP/1.1 200 OK\r\nX A: b\r\n\r\n", err: true},
		{name: "truncated", in: "HTTP/1.1 200 OK\r\nContent-Le", err: true},
	} {
		br := bufio.NewReader(strings.NewReader(tc.in))
		var scratch []byte
		var h respHead
		m := tc.method
		if m == "" {
			m = "GET"
		}
		err := readResponseHead(br, &scratch, m, &h)
		if tc.err {
			if err == nil {
				t.Errorf("%s: no error", tc.name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if h.status != tc.status || h.mode != tc.mode || h.length != tc.length || h.close != tc.close {
			t.Errorf("%s: got %+v", tc.name, h)
		}
		var body io.Reader
		switch h.mode {
		case bodyFixed:
			body = &fixedReader{br: br, n: h.length}
		case bodyChunked:
			body = &chunkedBody{br: br}
		case bodyEOF:
			body = br
		default:
			body = strings.NewReader("")
		}
		b, err := io.ReadAll(body)
		if err != nil || string(b) != tc.body {
			t.Errorf("%s: body %q %v", tc.name, b, err)
		}
	}
}

func TestResponseHeadKeysAndTrailers(t *testing.T) {
	in := "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nX-Multi: 1\r\nX-Multi: 2\r\nTrailer: x-sum\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"1\r\na\r\n0\r\nX-Sum: 7\r\n\r\n"
	br := bufio.NewReader(strings.NewReader(in))
	var scratch []byte
	var h respHead
	if err := readResponseHead(br, &scratch, "GET", &h); err != nil {
		t.Fatal(err)
	}
	if h.header.Get("Content-Type") != "text/plain" || strings.Join(h.header["X-Multi"], ",") != "1,2" || h.header["Trailer"] != nil {
		t.Fatalf("header %v", h.header)
	}
	if _, ok := h.trailer["X-Sum"]; !ok {
		t.Fatalf("declared trailers %v", h.trailer)
	}
	cb := &chunkedBody{br: br, trailer: h.trailer}
	io.ReadAll(cb)
	if cb.trailer.Get("X-Sum") != "7" {
		t.Fatalf("trailers %v", cb.trailer)
	}
}

// FuzzReadResponseHead: no input may panic, and an accepted head has a
// valid status and framing.
func FuzzReadResponseHead(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")
	f.Add("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	f.Add("HTTP/1.0 101 x\r\nConnection: upgrade\r\n\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		br := bufio.NewReaderSize(strings.NewReader(in), 64)
		var scratch []byte
		var h respHead
		if err := readResponseHead(br, &scratch, http.MethodGet, &h); err != nil {
			return
		}
		if h.status < 100 || h.status > 999 || h.mode == bodyFixed && h.length < 0 {
			t.Fatalf("accepted %+v", h)
		}
		if h.mode == bodyChunked {
			io.ReadAll(&chunkedBody{br: br})
		}
	})
}
