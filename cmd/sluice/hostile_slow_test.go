package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Slow and stuck clients: the header timeout cuts a slowloris however
// steadily it trickles, idle keep-alive connections are closed, and a
// client that stops reading holds up nobody else.
func TestHostileSlowClients(t *testing.T) {
	t.Parallel()
	b := newStreamBackend(t)
	e := startEdge(t, b.ln.Addr().String(), "  read_header_timeout: 1s\n  idle_timeout: 1s\n")

	// Headers trickled a byte at a time never complete; the connection is
	// cut at the header timeout, long before the trickle would end.
	t.Run("slowloris", func(t *testing.T) {
		c := dialRaw(t, e.addr)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := "GET /trailer HTTP/1.1\r\nHost: h.test\r\nX-Slow: " + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			for i := 0; i < len(msg); i++ {
				if _, err := c.c.Write([]byte{msg[i]}); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
		start := time.Now()
		closed, extra := c.closedByPeer()
		close(stop)
		wg.Wait()
		if !closed {
			t.Fatalf("slowloris connection still open after %v", time.Since(start))
		}
		// A head begun but not finished in time gets 408, then the close.
		if !startsWith(extra, "HTTP/1.1 408") {
			t.Errorf("unexpected answer to a slowloris: %q", extra)
		}
	})

	// The header timeout also holds for the second request of a
	// keep-alive connection.
	t.Run("slowloris after a first request", func(t *testing.T) {
		c := dialRaw(t, e.addr)
		c.send("GET /trailer HTTP/1.1\r\nHost: h.test\r\n\r\n")
		if res, _, err := c.response("GET"); err != nil || res.StatusCode != 200 {
			t.Fatalf("first request: %v %v", res, err)
		}
		stop := make(chan struct{})
		defer close(stop)
		go trickle(c.c, "GET /trailer HTTP/1.1\r\nHost: h.test\r\nX-Slow: "+strings.Repeat("a", 200), 50*time.Millisecond, stop)
		if closed, extra := c.closedByPeer(); !closed {
			t.Fatal("slowloris on a kept-alive connection not cut")
		} else if !startsWith(extra, "HTTP/1.1 408") {
			t.Errorf("unexpected answer: %q", extra)
		}
	})

	// A connection that never sends a byte is closed too.
	t.Run("silent connection", func(t *testing.T) {
		c := dialRaw(t, e.addr)
		if closed, extra := c.closedByPeer(); !closed || (extra != "" && !startsWith(extra, "HTTP/1.1 408")) {
			t.Fatalf("silent connection: closed=%v extra=%q", closed, extra)
		}
	})

	// A keep-alive connection left idle is closed after the idle timeout.
	t.Run("idle keep-alive", func(t *testing.T) {
		c := dialRaw(t, e.addr)
		c.send("GET /trailer HTTP/1.1\r\nHost: h.test\r\n\r\n")
		if res, _, err := c.response("GET"); err != nil || res.StatusCode != 200 {
			t.Fatalf("first request: %v %v", res, err)
		}
		if closed, extra := c.closedByPeer(); !closed || extra != "" {
			t.Fatalf("idle connection: closed=%v extra=%q", closed, extra)
		}
	})

	// One client stops reading a 64 MiB answer; others are served.
	t.Run("stalled reader", func(t *testing.T) {
		stalled := dialRaw(t, e.addr)
		stalled.send("GET /big HTTP/1.1\r\nHost: h.test\r\n\r\n")
		plateau(b.written.Load) // its pipeline is full
		for i := 0; i < 20; i++ {
			res, err := newClient().Get("http://" + e.addr + "/trailer")
			if err != nil {
				t.Fatalf("request %d while a client stalls: %v", i, err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || string(body) != "body with a trailer" {
				t.Fatalf("request %d: %d %q", i, res.StatusCode, body)
			}
		}
	})
}

func startsWith(s, prefix string) bool { return len(s) >= len(prefix) && s[:len(prefix)] == prefix }

// A client that stalls in the middle of its request body gets 408 after
// body_read_timeout and its connection is closed; the timeout counts
// between reads, so a body that trickles steadily still arrives.
func TestHostileSlowBody(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		fmt.Fprintf(w, "got %d", len(b))
	}))
	t.Cleanup(up.Close)
	e := startEdge(t, up.URL, "  body_read_timeout: 1s\n")

	for name, req := range map[string]string{
		"content-length": "POST /x HTTP/1.1\r\nHost: h.test\r\nContent-Length: 100\r\n\r\n0123456789",
		"chunked":        "POST /x HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
	} {
		t.Run("stalled "+name, func(t *testing.T) {
			c := dialRaw(t, e.addr)
			start := time.Now()
			c.send(req)
			res, _, err := c.response("POST")
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != http.StatusRequestTimeout {
				t.Errorf("status %d, want 408", res.StatusCode)
			}
			if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
				t.Errorf("answered after %v; body_read_timeout is 1s", d)
			}
			if closed, _ := c.closedByPeer(); !closed {
				t.Error("connection left open after a stalled body")
			}
		})
	}

	t.Run("steady trickle", func(t *testing.T) {
		c := dialRaw(t, e.addr)
		c.send("POST /x HTTP/1.1\r\nHost: h.test\r\nContent-Length: 6\r\n\r\n")
		for i := 0; i < 6; i++ { // 1.8 s in all, 0.3 s apart
			time.Sleep(300 * time.Millisecond)
			c.send("x")
		}
		res, body, err := c.response("POST")
		if err != nil || res.StatusCode != 200 || body != "got 6" {
			t.Fatalf("trickled body: %v %q %v", res, body, err)
		}
	})
}
