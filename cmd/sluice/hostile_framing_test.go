package main

import (
	"fmt"
	"strings"
	"testing"
)

// Framing behaviour that is valid but easy to get wrong: pipelining,
// Expect: 100-continue and body limits enforced while the body streams.
func TestHostileFraming(t *testing.T) {
	t.Parallel()
	b := newRecBackend(t)
	e := startEdge(t, b.addr(), "  max_body_bytes: 1MiB\n")

	// Requests pipelined in one write are all answered, in order.
	t.Run("pipelined", func(t *testing.T) {
		c := dialRaw(t, e.addr)
		c.send("GET /p1 HTTP/1.1\r\nHost: h.test\r\n\r\n" +
			"POST /p2 HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\n\r\nhello" +
			"POST /p3 HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
			"GET /p4 HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n")
		for _, want := range []string{"ok /p1 0", "ok /p2 5", "ok /p3 3", "ok /p4 0"} {
			res, body, err := c.response("GET")
			if err != nil {
				t.Fatalf("waiting for %q: %v", want, err)
			}
			if res.StatusCode != 200 || body != want {
				t.Errorf("pipelined answer %d %q, want %q", res.StatusCode, body, want)
			}
		}
		if closed, extra := c.closedByPeer(); !closed || extra != "" {
			t.Errorf("after Connection: close: closed=%v extra=%q", closed, extra)
		}
	})

	// A HEAD answer carries no body even though the upstream's
	// Content-Length is kept: the next pipelined answer must not be eaten
	// as its body.
	t.Run("pipelined HEAD", func(t *testing.T) {
		c := dialRaw(t, e.addr)
		c.send("HEAD /h1 HTTP/1.1\r\nHost: h.test\r\n\r\nGET /h2 HTTP/1.1\r\nHost: h.test\r\n\r\n")
		res, body, err := c.response("HEAD")
		if err != nil || res.StatusCode != 200 || body != "" {
			t.Fatalf("HEAD: %v %v %q", res, err, body)
		}
		res, body, err = c.response("GET")
		if err != nil || res.StatusCode != 200 || body != "ok /h2 0" {
			t.Fatalf("GET after HEAD: %v %v %q", res, err, body)
		}
	})

	// An HTTP/1.0 client cannot take chunked: a body of unknown length is
	// delimited by closing the connection.
	t.Run("HTTP/1.0 client, streamed answer", func(t *testing.T) {
		c := dialRaw(t, e.addr)
		c.send("GET /stream HTTP/1.0\r\nHost: h.test\r\n\r\n")
		raw := c.rest()
		head, body, _ := strings.Cut(raw, "\r\n\r\n")
		if !strings.HasPrefix(head, "HTTP/1.") || strings.Contains(strings.ToLower(head), "transfer-encoding") {
			t.Fatalf("answer to HTTP/1.0: %q", head)
		}
		if body != "ok /stream 0" {
			t.Errorf("body %q", body)
		}
	})

	// Garbage after a valid pipelined request: the first is answered, the
	// garbage gets a 400 and the connection closes.
	t.Run("pipelined then garbage", func(t *testing.T) {
		m := b.mark()
		c := dialRaw(t, e.addr)
		c.send("GET /g1 HTTP/1.1\r\nHost: h.test\r\n\r\nGARBAGE GARBAGE\r\n\r\nGET /g2 HTTP/1.1\r\nHost: h.test\r\n\r\n")
		res, body, err := c.response("GET")
		if err != nil || res.StatusCode != 200 || body != "ok /g1 0" {
			t.Fatalf("first: %v %v %q", res, err, body)
		}
		res, _, err = c.response("GET")
		if err != nil || res.StatusCode != 400 {
			t.Fatalf("garbage: %v %v", res, err)
		}
		if closed, extra := c.closedByPeer(); !closed || extra != "" {
			t.Errorf("after garbage: closed=%v extra=%q", closed, extra)
		}
		for _, r := range b.since(m) {
			if r.Path != "/g1" {
				t.Errorf("backend got %s after the garbage", r.Path)
			}
		}
	})

	// The client waits for 100 Continue before sending the body; sluice
	// must send it (or the final answer), never leave both sides waiting.
	t.Run("expect 100-continue", func(t *testing.T) {
		c := dialRaw(t, e.addr)
		c.send("POST /e HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		res, _, err := c.response("POST")
		if err != nil {
			t.Fatalf("no interim answer: %v", err)
		}
		if res.StatusCode != 100 {
			t.Fatalf("got %d before the body was sent, want 100 Continue", res.StatusCode)
		}
		c.send("hello")
		res, body, err := c.response("POST")
		if err != nil || res.StatusCode != 200 || body != "ok /e 5" {
			t.Fatalf("final answer: %v %v %q", res, err, body)
		}
	})

	// A declared body over the limit is refused before the client sends it.
	t.Run("expect with too large body", func(t *testing.T) {
		m := b.mark()
		c := dialRaw(t, e.addr)
		c.send("POST /e HTTP/1.1\r\nHost: h.test\r\nContent-Length: 2097152\r\nExpect: 100-continue\r\n\r\n")
		res, _, err := c.response("POST")
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 413 && res.StatusCode != 417 {
			t.Errorf("status %d, want 413 (or 417) without 100 Continue", res.StatusCode)
		}
		if got := b.since(m); len(got) != 0 {
			t.Errorf("backend received %d requests", len(got))
		}
	})

	t.Run("unknown expectation", func(t *testing.T) {
		c := dialRaw(t, e.addr)
		c.send("POST /e HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\nExpect: teapot\r\n\r\nhello")
		res, _, err := c.response("POST")
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 417 && res.StatusCode != 200 {
			t.Errorf("status %d, want 417 Expectation Failed", res.StatusCode)
		}
	})

	// Over the limit by Content-Length: 413 without touching the backend.
	// Over the limit while streaming chunked: 413 once the limit is
	// crossed; the backend never gets a complete body. Either way the
	// connection closes (the rest of the body was not read).
	chunk := fmt.Sprintf("%x\r\n%s\r\n", 64<<10, strings.Repeat("y", 64<<10))
	for _, tc := range []struct{ name, req string }{
		{"content-length", "POST /big HTTP/1.1\r\nHost: h.test\r\nContent-Length: 2097152\r\n\r\n" + strings.Repeat("x", 2<<20)},
		{"chunked", "POST /big HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat(chunk, 32) + "0\r\n\r\n"},
	} {
		t.Run("body over limit, "+tc.name, func(t *testing.T) {
			m := b.mark()
			c := dialRaw(t, e.addr)
			go c.c.Write([]byte(tc.req))
			res, _, err := c.response("POST")
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if res.StatusCode != 413 {
				t.Errorf("status %d, want 413", res.StatusCode)
			}
			if closed, _ := c.closedByPeer(); !closed {
				t.Error("connection left open with an unread body")
			}
			for _, r := range b.since(m) {
				if tc.name == "content-length" || r.BodyErr == nil {
					t.Errorf("backend received a request with %d body bytes (err %v)", len(r.Body), r.BodyErr)
				}
			}
		})
	}
}
