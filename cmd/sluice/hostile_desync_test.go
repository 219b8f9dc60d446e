package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"testing"
	"time"
)

// poison is a complete response an upstream sends where none belongs. A
// proxy that keeps the connection and reads it later hands it to another
// client's request: a response desync.
const poison = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Poison: 1\r\n\r\npoisoned"

// keepAliveUpstream answers requests on persistent connections; the path
// chooses the (mis)behaviour, "/clean" and others get a proper answer. It
// records the raw head of every request it reads.
type keepAliveUpstream struct {
	ln    net.Listener
	mu    sync.Mutex
	heads []string
}

func newKeepAliveUpstream(t *testing.T) *keepAliveUpstream {
	t.Helper()
	u := &keepAliveUpstream{}
	u.ln = serveRaw(t, u.serve)
	return u
}

func (u *keepAliveUpstream) serve(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		// Record the head as it came on the wire.
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" || line == "\n" {
				break
			}
		}
		u.mu.Lock()
		u.heads = append(u.heads, head.String())
		u.mu.Unlock()
		req, err := http.ReadRequest(bufio.NewReader(io.MultiReader(strings.NewReader(head.String()), br)))
		if err != nil {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return
		}
		// The body is read from br directly (the MultiReader's own buffer
		// would swallow the next request otherwise).
		switch {
		case req.ContentLength > 0:
			io.CopyN(io.Discard, br, req.ContentLength)
		case len(req.TransferEncoding) > 0:
			io.Copy(io.Discard, httputil.NewChunkedReader(br))
			br.ReadString('\n') // the final CRLF (no trailers here)
		}
		var out string
		switch req.URL.Path {
		case "/head-body": // a HEAD answered with a body
			out = "HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n" + poison
		case "/cl-extra": // more bytes than Content-Length says
			out = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + poison
		case "/204-body": // a 204 followed by bytes nobody asked for
			out = "HTTP/1.1 204 No Content\r\n\r\n" + poison
		case "/chunked-extra": // bytes after the last chunk
			out = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" + poison
		default:
			out = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nclean"
		}
		if req.URL.Path == "/head-late" {
			// A HEAD answered with a body written separately, later.
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n")
			time.Sleep(20 * time.Millisecond)
			out = poison
		}
		if _, err := io.WriteString(c, out); err != nil {
			return
		}
	}
}

func (u *keepAliveUpstream) since(i int) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.heads[i:]...)
}

func (u *keepAliveUpstream) mark() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.heads)
}

// An upstream that sends more than its answer (a body on HEAD or 204,
// bytes past Content-Length or the last chunk) must not get those bytes
// delivered to the next client whose request reuses the connection.
func TestHostileUpstreamDesync(t *testing.T) {
	t.Parallel()
	u := newKeepAliveUpstream(t)
	for _, tc := range []struct{ method, path string }{
		{"HEAD", "/head-body"},
		{"GET", "/cl-extra"},
		{"GET", "/204-body"},
		{"GET", "/chunked-extra"},
		{"HEAD", "/head-late"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			// A sluice per case: a poisoned pool must not spill into the
			// next case.
			e := startEdge(t, u.ln.Addr().String(), "")
			for i := 0; i < 3; i++ {
				req, _ := http.NewRequest(tc.method, "http://"+e.addr+tc.path, nil)
				res, err := newClient().Do(req)
				if err != nil {
					t.Fatalf("trigger: %v", err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.Header.Get("X-Poison") != "" {
					t.Fatalf("the extra bytes became this answer")
				}
				if tc.path == "/head-late" {
					// Let the late bytes arrive while the connection is idle
					// (bytes that come while the next request is awaited
					// are beyond any proxy's reach).
					time.Sleep(60 * time.Millisecond)
				}
				// Another client, whose request takes the pooled connection.
				code, body, h := get(t, e.addr, "", "/clean")
				if code != 200 || body != "clean" || h.Get("X-Poison") != "" {
					t.Fatalf("next client got %d %q (X-Poison %q): a response desync", code, body, h.Get("X-Poison"))
				}
			}
		})
	}
}

// What reaches the upstream is re-framed by sluice: one framing header,
// no obs-fold, no hop-by-hop headers, a single Host.
func TestHostileForwardedHead(t *testing.T) {
	t.Parallel()
	u := newKeepAliveUpstream(t)
	e := startEdge(t, u.ln.Addr().String(), "")
	for _, tc := range []struct{ name, req string }{
		{"chunked", "POST /f HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{"content-length", "POST /f HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\n\r\nhello"},
		{"CL+TE", "POST /f HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{"hop-by-hop", "GET /f HTTP/1.1\r\nHost: h.test\r\nConnection: X-Secret, keep-alive\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: gzip\r\nUpgrade: foo\r\n\r\n"},
		{"absolute-form", "GET http://a.test/f HTTP/1.1\r\nHost: b.test\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := u.mark()
			c := dialRaw(t, e.addr)
			c.send(tc.req)
			res, _, err := c.response("GET")
			if err != nil {
				t.Fatal(err)
			}
			heads := u.since(m)
			if res.StatusCode != 200 {
				if len(heads) != 0 {
					t.Errorf("answered %d but the upstream got %q", res.StatusCode, heads)
				}
				return
			}
			if len(heads) != 1 {
				t.Fatalf("upstream got %d requests: %q", len(heads), heads)
			}
			h := strings.ToLower(heads[0])
			count := func(name string) int { return strings.Count(h, "\r\n"+name+":") }
			if count("content-length")+count("transfer-encoding") > 1 {
				t.Errorf("forwarded with two framing headers:\n%s", heads[0])
			}
			if count("host") != 1 {
				t.Errorf("forwarded with %d Host headers:\n%s", count("host"), heads[0])
			}
			for _, hop := range []string{"x-secret", "keep-alive", "proxy-connection", "upgrade"} {
				if count(hop) != 0 {
					t.Errorf("hop-by-hop %s forwarded:\n%s", hop, heads[0])
				}
			}
			if strings.Contains(h, "\r\n ") || strings.Contains(h, "\r\n\t") {
				t.Errorf("obs-fold forwarded:\n%s", heads[0])
			}
			if tc.name == "absolute-form" && !strings.HasPrefix(h, "get /f http/1.1\r\n") || tc.name == "absolute-form" && count("host") == 1 && !strings.Contains(h, "\r\nhost: a.test\r\n") {
				t.Errorf("absolute-form forwarded as:\n%s", heads[0])
			}
		})
	}
}

// WebSocket smuggling: a client asks for an upgrade that the upstream
// refuses (200/426 instead of 101). The connection must stay HTTP: the
// client's next bytes are parsed by sluice as a request (and get its
// headers), never piped raw to the upstream.
func TestHostileRefusedUpgrade(t *testing.T) {
	t.Parallel()
	u := newKeepAliveUpstream(t)
	e := startEdge(t, u.ln.Addr().String(), "")
	m := u.mark()
	c := dialRaw(t, e.addr)
	c.send("GET /ws HTTP/1.1\r\nHost: h.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 1337\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	res, body, err := c.response("GET")
	if err != nil || res.StatusCode == http.StatusSwitchingProtocols {
		t.Fatalf("refused upgrade: %v %v %q", res, err, body)
	}
	c.send("GET /second HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n")
	raw := c.rest()
	heads := u.since(m)
	if len(heads) != 2 {
		t.Fatalf("upstream got %d requests %q; client got %q", len(heads), heads, raw)
	}
	if !strings.HasPrefix(heads[1], "GET /second ") || !strings.Contains(strings.ToLower(heads[1]), "x-request-id:") {
		t.Errorf("second request reached the upstream without passing through sluice:\n%s", heads[1])
	}
}
