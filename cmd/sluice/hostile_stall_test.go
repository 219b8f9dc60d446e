package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// An upstream that stops in the middle of a body without closing, or
// stops taking an upload without answering, holds the exchange only for
// upstream_stall_timeout: then the client's answer is cut (or it gets a
// 5xx) and the upstream connection is closed, whether or not the client
// is still there. Before, both waited for ever, holding goroutines, the
// client's descriptor and the upstream connection.
func TestHostileUpstreamStalls(t *testing.T) {
	t.Parallel()
	closed := make(chan string, 4)
	ln := serveRaw(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		switch req.URL.Path {
		case "/stall-body":
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", 1<<20, strings.Repeat("x", 64<<10))
		case "/no-read":
			// Take nothing of the upload and never answer.
		}
		// Wait for sluice to give up on the connection (the deadline
		// only ends the test's backend).
		c.SetReadDeadline(time.Now().Add(waitTimeout))
		if req.URL.Path == "/no-read" {
			time.Sleep(3 * time.Second) // sluice's upload fills the socket buffers meanwhile
		}
		io.Copy(io.Discard, c)
		closed <- req.URL.Path
	})
	e := startEdge(t, ln.Addr().String(), "  upstream_stall_timeout: 1s\n  response_header_timeout: 1s\n")

	t.Run("body stalls", func(t *testing.T) {
		start := time.Now()
		res, err := newClient().Get("http://" + e.addr + "/stall-body")
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err == nil || n >= 1<<20 {
			t.Fatalf("read %d bytes, err %v: want the answer cut short", n, err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("the cut came after %v, want about upstream_stall_timeout (1s)", took)
		}
		waitClosed(t, closed, "/stall-body")
	})

	t.Run("upload not taken", func(t *testing.T) {
		c := dialRaw(t, e.addr)
		c.send(fmt.Sprintf("POST /no-read HTTP/1.1\r\nHost: h.test\r\nContent-Length: %d\r\n\r\n", 32<<20))
		go func() {
			chunk := make([]byte, 64<<10)
			for i := 0; i < 512; i++ {
				c.c.SetWriteDeadline(time.Now().Add(waitTimeout))
				if _, err := c.c.Write(chunk); err != nil {
					return
				}
			}
		}()
		start := time.Now()
		res, _, err := c.response("POST")
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		if res.StatusCode < 500 || time.Since(start) > 6*time.Second {
			t.Fatalf("got %d after %v, want a 5xx within about upstream_stall_timeout + response_header_timeout", res.StatusCode, time.Since(start))
		}
		waitClosed(t, closed, "/no-read")
	})
}

func waitClosed(t *testing.T, closed <-chan string, path string) {
	t.Helper()
	select {
	case p := <-closed:
		if p != path {
			t.Fatalf("upstream connection of %s closed, want %s", p, path)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("sluice kept the upstream connection of %s open", path)
	}
}

// An idle pooled upstream connection is closed once upstream_idle_timeout
// has passed even when no more traffic comes (nothing else would look at
// the pool again).
func TestUpstreamIdleConnsReapedWithoutTraffic(t *testing.T) {
	t.Parallel()
	closed := make(chan time.Time, 1)
	ln := serveRaw(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.SetReadDeadline(time.Now().Add(waitTimeout))
		io.Copy(io.Discard, c)
		closed <- time.Now()
	})
	e := startEdge(t, ln.Addr().String(), "  upstream_idle_timeout: 1s\n")
	if code, body, _ := get(t, e.addr, "h.test", "/"); code != 200 || body != "ok" {
		t.Fatalf("got %d %q", code, body)
	}
	idle := time.Now()
	select {
	case at := <-closed:
		// The connection went idle a little before the client had its
		// answer (when sluice read the body's end), hence the lower bound.
		if d := at.Sub(idle); d < 500*time.Millisecond || d > 4*time.Second {
			t.Fatalf("the idle upstream connection closed after %v, want about 1s", d)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("the idle upstream connection was never closed")
	}
}

// Clients that give up (an h2 stream reset, a gRPC deadline) cancel the
// upstream attempt; that is not the upstream's fault, so it neither ejects
// a healthy upstream (passive health) nor shows as a 502.
func TestClientCancelsDoNotEject(t *testing.T) {
	t.Parallel()
	// An h2c upstream: its transport gives up with the client's context.
	be := &http.Server{Handler: h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
		io.WriteString(w, "slow")
	}), &http2.Server{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go be.Serve(ln)
	t.Cleanup(func() { be.Close() })
	dir := t.TempDir()
	p := start(t, "serve", "-c", writeConfig(t, dir, fmt.Sprintf(`
log: {format: json}
endpoints:
  - url: http://:80
    listen: 127.0.0.1:0
    upstream: h2c://%s
    load_balancing: {passive: {max_fails: 2}}
`, ln.Addr())))
	p.waitLog(0, "started", msg("sluice started"))
	addr := p.addr("127.0.0.1:0")
	c := h2cClient()
	for i := 0; i < 4; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/slow", nil)
		if res, err := c.Do(req); err == nil {
			res.Body.Close()
		}
		cancel()
	}
	time.Sleep(300 * time.Millisecond)
	if n := p.count(msg("upstream ejected after failures")); n != 0 {
		t.Fatalf("client cancellations ejected the upstream (%d times):\n%s", n, p.logText())
	}
	if n := p.count(func(m map[string]any) bool { return m["msg"] == "request failed" && m["status"] == float64(502) }); n != 0 {
		t.Fatalf("client cancellations logged as 502 (%d):\n%s", n, p.logText())
	}
}

// An HTTP/2 client that resets its stream stops the HTTP/1.1 upstream's
// work too: sluice closes the upstream connection at once rather than
// waiting for an answer nobody will read (many reset streams would
// otherwise pile up upstream requests for response_header_timeout).
func TestH2ResetCancelsHTTP1Upstream(t *testing.T) {
	t.Parallel()
	cancelled := make(chan time.Duration, 1)
	be := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		select {
		case <-time.After(5 * time.Second):
			cancelled <- -1
		case <-r.Context().Done():
			cancelled <- time.Since(start)
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go be.Serve(ln)
	t.Cleanup(func() { be.Close() })
	e := startEdge(t, ln.Addr().String(), "")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+e.addr+"/slow", nil)
	if res, err := h2cClient().Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("got %d, want the client's own deadline to end the request", res.StatusCode)
	}
	select {
	case d := <-cancelled:
		if d < 0 || d > 2*time.Second {
			t.Fatalf("the upstream's request was cancelled after %v, want soon after the client's reset (200 ms)", d)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the upstream never finished")
	}
}
