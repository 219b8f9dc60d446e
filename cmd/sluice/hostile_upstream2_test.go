package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// An upstream that never ends its trailer section is cut like one with an
// oversized header: sluice neither holds the trailers in memory nor hands
// the client an endless trailer.
func TestHostileUpstreamEndlessTrailer(t *testing.T) {
	t.Parallel()
	u := newRawUpstream(t)
	e := startEdge(t, u.ln.Addr().String(), "")
	var sent atomic.Int64
	u.handle("/trailers", func(c net.Conn) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nok\r\n0\r\n")
		line := []byte("X-T: " + strings.Repeat("t", 1<<10) + "\r\n")
		for sent.Load() < bigStream {
			c.SetWriteDeadline(time.Now().Add(waitTimeout))
			if _, err := c.Write(line); err != nil {
				return
			}
			sent.Add(int64(len(line)))
		}
		io.WriteString(c, "\r\n")
	})
	base := rssKB(t, e.p.cmd.Process.Pid)
	c := dialRaw(t, e.addr)
	c.send("GET /trailers HTTP/1.1\r\nHost: h.test\r\nTE: trailers\r\n\r\n")
	held := plateau(sent.Load)
	growth := rssKB(t, e.p.cmd.Process.Pid) - base
	t.Logf("upstream sent %d KiB of trailers; sluice RSS grew %d KiB", held>>10, growth)
	if held >= bigStream || growth > 32<<10 {
		t.Errorf("sluice took %d MiB of trailers (RSS +%d MiB): trailers are not bounded like headers", held>>20, growth>>10)
	}
}

// An upstream that answers before reading the upload (an early 413 or
// 401) gets its answer to the client; nobody waits for the rest of the
// body.
func TestHostileUpstreamEarlyAnswer(t *testing.T) {
	t.Parallel()
	ln := serveRaw(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 7\r\nConnection: close\r\n\r\ntoo big")
		// Linger reading a little, as servers do, then close.
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		io.Copy(io.Discard, br)
	})
	e := startEdge(t, ln.Addr().String(), "")
	for _, framing := range []string{"Content-Length: 33554432\r\n", "Transfer-Encoding: chunked\r\n"} {
		c := dialRaw(t, e.addr)
		var stop atomic.Bool
		go func() {
			c.c.Write([]byte("POST /up HTTP/1.1\r\nHost: h.test\r\n" + framing + "\r\n"))
			chunk := []byte(fmt.Sprintf("%x\r\n%s\r\n", 32<<10, strings.Repeat("q", 32<<10)))
			if strings.HasPrefix(framing, "Content-Length") {
				chunk = []byte(strings.Repeat("q", 32<<10))
			}
			for i := 0; i < 1024 && !stop.Load(); i++ {
				c.c.SetWriteDeadline(time.Now().Add(waitTimeout))
				if _, err := c.c.Write(chunk); err != nil {
					return
				}
			}
		}()
		res, body, err := c.response("POST")
		stop.Store(true)
		if err != nil {
			t.Fatalf("%s: no answer: %v", framing, err)
		}
		if res.StatusCode != 413 || body != "too big" {
			t.Errorf("%s: got %d %q, want the upstream's early 413", framing, res.StatusCode, body)
		}
	}
}
