package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// rawUpstream is a backend written by hand on raw TCP: it reads one
// request head per connection and runs the script registered for its
// path, which writes whatever bytes it likes.
type rawUpstream struct {
	ln      net.Listener
	mu      sync.Mutex
	scripts map[string]func(c net.Conn)
}

func newRawUpstream(t *testing.T) *rawUpstream {
	t.Helper()
	u := &rawUpstream{scripts: map[string]func(net.Conn){}}
	u.ln = serveRaw(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			u.mu.Lock()
			s := u.scripts[req.URL.Path]
			u.mu.Unlock()
			if s == nil {
				io.WriteString(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
				continue
			}
			s(c)
			return // scripts own the connection: one request each
		}
	})
	return u
}

func (u *rawUpstream) handle(path string, script func(c net.Conn)) {
	u.mu.Lock()
	u.scripts[path] = script
	u.mu.Unlock()
}

// writes returns a script that writes s and then closes the connection.
func writes(s string) func(net.Conn) {
	return func(c net.Conn) { io.WriteString(c, s) }
}

// Broken, hostile and slow upstreams: the client gets a clear 502/504,
// a cut stream looks cut (never like a clean short body), and a slow
// stream is passed on as it arrives.
func TestHostileUpstream(t *testing.T) {
	t.Parallel()
	u := newRawUpstream(t)
	e := startEdge(t, u.ln.Addr().String(), "  response_header_timeout: 1s\n")

	u.handle("/clte", writes("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
	u.handle("/twocl", writes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"))
	u.handle("/badchunk", writes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"))
	u.handle("/badchunk-late", writes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n"))
	u.handle("/short-cl", writes("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"))
	u.handle("/short-chunked", writes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"))
	u.handle("/garbage", writes("HTTP/1.1 OK\r\nContent-Length: 0\r\n\r\n"))
	u.handle("/garbage2", writes("SSH-2.0-OpenSSH_9.0\r\n\r\n"))
	u.handle("/te-gzip", writes("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxxxx"))
	u.handle("/huge-head", writes("HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("h", 300<<10)+"\r\nContent-Length: 2\r\n\r\nok"))
	u.handle("/1xx", writes("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"+
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"))
	u.handle("/101", writes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\nraw bytes"))
	u.handle("/status-999", writes("HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok"))
	u.handle("/status-099", writes("HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok"))
	u.handle("/nul-header", writes("HTTP/1.1 200 OK\r\nX-A: b\x00c\r\nContent-Length: 2\r\n\r\nok"))
	u.handle("/crlf-split", writes("HTTP/1.1 200 OK\r\nX-A: b\rSet-Cookie: evil=1\r\nContent-Length: 2\r\n\r\nok"))
	u.handle("/silent", func(c net.Conn) { io.Copy(io.Discard, c) })
	u.handle("/reset", func(c net.Conn) { c.(*net.TCPConn).SetLinger(0) })

	cases := []struct {
		path   string
		status []int
		body   string // when 200: the complete body expected
		cut    bool   // when 200: the body must end in an error, not EOF
	}{
		{path: "/clte", status: []int{200, 502}, body: "hello"},
		{path: "/twocl", status: []int{502}},
		{path: "/badchunk", status: []int{502}}, // nothing was sent yet: a whole 502
		{path: "/badchunk-late", status: []int{200, 502}, cut: true},
		{path: "/short-cl", status: []int{200, 502}, cut: true},
		{path: "/short-chunked", status: []int{200, 502}, cut: true},
		{path: "/garbage", status: []int{502}},
		{path: "/garbage2", status: []int{502}},
		{path: "/te-gzip", status: []int{502}},
		{path: "/huge-head", status: []int{502}},
		{path: "/1xx", status: []int{200}, body: "final"},
		{path: "/101", status: []int{502}},
		{path: "/status-999", status: []int{502, 999}},
		{path: "/status-099", status: []int{502}},
		{path: "/nul-header", status: []int{502, 200}, body: "ok"},
		{path: "/crlf-split", status: []int{502, 200}, body: "ok"},
		{path: "/silent", status: []int{504}},
		{path: "/reset", status: []int{502}},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			c := dialRaw(t, e.addr)
			c.send("GET " + tc.path + " HTTP/1.1\r\nHost: h.test\r\n\r\n")
			c.c.SetReadDeadline(time.Now().Add(waitTimeout))
			var res *http.Response
			var err error
			for {
				// Interim answers may be forwarded; the final one counts.
				res, err = http.ReadResponse(c.br, &http.Request{Method: "GET"})
				if err != nil || res.StatusCode >= 200 {
					break
				}
				if res.StatusCode != 103 {
					t.Errorf("interim %d forwarded to a client that did not ask", res.StatusCode)
				}
			}
			if err != nil {
				// A body that breaks before anything reached the client may
				// abort the connection without a head: still not a clean
				// answer, which is what matters.
				if tc.cut && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
					return
				}
				// RFC 9110 §5.5: CR, LF and NUL in a field value must be
				// rejected or replaced before forwarding.
				t.Fatalf("no answer the client could parse: %v", err)
			}
			ok := false
			for _, s := range tc.status {
				ok = ok || s == res.StatusCode
			}
			body, berr := io.ReadAll(res.Body)
			if !ok {
				t.Fatalf("status %d (%q), want one of %v", res.StatusCode, body, tc.status)
			}
			if res.StatusCode != 200 {
				if berr != nil {
					t.Errorf("error answer cut: %v", berr)
				}
				return
			}
			if res.Header.Get("Set-Cookie") != "" || strings.ContainsAny(res.Header.Get("X-A"), "\x00\r\n") {
				t.Errorf("a control character in an upstream header reached the client: %q", res.Header)
			}
			if res.Header.Get("Content-Length") != "" && res.Header.Get("Transfer-Encoding") != "" {
				t.Errorf("client got both Content-Length and Transfer-Encoding")
			}
			if tc.cut {
				if berr == nil {
					t.Errorf("a broken upstream body reached the client as a clean %d-byte body %q", len(body), body)
				}
				if closed, _ := c.closedByPeer(); !closed {
					t.Errorf("client connection left open after a cut body")
				}
				return
			}
			if berr != nil || string(body) != tc.body {
				t.Errorf("body %q (%v), want %q", body, berr, tc.body)
			}
		})
	}
}

// A body trickled by the upstream reaches the client piece by piece: the
// upstream writes its second piece only once the client has read the first
// (a proxy that waits for more would stall until the upstream gives up).
func TestHostileUpstreamDrip(t *testing.T) {
	t.Parallel()
	u := newRawUpstream(t)
	e := startEdge(t, u.ln.Addr().String(), "")
	for _, tc := range []struct{ name, head, first, last string }{
		{"content-length", "Content-Length: 10\r\n", "first", "-last"},
		{"chunked", "Transfer-Encoding: chunked\r\n", "5\r\nfirst\r\n", "5\r\n-last\r\n0\r\n\r\n"},
		{"until-close", "", "first", "-last"},
		// An event stream or long poll whose first event comes late: the
		// client must get the head at once.
		{"head-only", "Transfer-Encoding: chunked\r\n", "", "4\r\nlate\r\n0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan struct{})
			u.handle("/drip-"+tc.name, func(c net.Conn) {
				io.WriteString(c, "HTTP/1.1 200 OK\r\n"+tc.head+"\r\n"+tc.first)
				select {
				case <-got:
					io.WriteString(c, tc.last)
				case <-time.After(closeWait):
				}
			})
			c := dialRaw(t, e.addr)
			c.send("GET /drip-" + tc.name + " HTTP/1.1\r\nHost: h.test\r\n\r\n")
			if tc.first == "" {
				// Only the head was sent: it alone must come through.
				c.c.SetReadDeadline(time.Now().Add(2 * closeWait))
				res, err := http.ReadResponse(c.br, nil)
				if err != nil {
					t.Fatalf("head held back until the body starts: %v", err)
				}
				close(got)
				rest, err := io.ReadAll(res.Body)
				if err != nil || string(rest) != "late" {
					t.Fatalf("body %q %v", rest, err)
				}
				return
			}
			c.c.SetReadDeadline(time.Now().Add(2 * closeWait))
			res, err := http.ReadResponse(c.br, nil)
			if err != nil {
				t.Fatalf("no head before the upstream finished: %v", err)
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(res.Body, buf); err != nil || string(buf) != "first" {
				t.Fatalf("first piece not passed on before the upstream finished: %q %v", buf, err)
			}
			close(got)
			rest, err := io.ReadAll(res.Body)
			if err != nil || string(rest) != "-last" {
				t.Fatalf("rest %q %v", rest, err)
			}
		})
	}
}
