package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	bigStream = 64 << 20
	// A proxy that buffers instead of applying backpressure holds most of
	// a 64 MiB stream while the reader pauses. The bound is on what the
	// processes hold, the kernel's socket queues (socketQueued) aside:
	// sluice's own buffers, a few tens of KiB, plus the peers' bufio.
	maxInFlight = 8 << 20
	// RSS growth allowed while 64 MiB pass through (generous: GC timing).
	maxRSSGrowthKB = 100 << 10
)

// streamBackend serves /big (bigStream bytes, counted as they are
// written), /upload (reads the body after release, answers its size),
// /sse (events acked one by one) and /trailer.
type streamBackend struct {
	ln      net.Listener
	written atomic.Int64
	read    atomic.Int64
	release chan struct{}
	ack     chan struct{}
}

func newStreamBackend(t *testing.T) *streamBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &streamBackend{ln: ln, release: make(chan struct{}), ack: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(bigStream))
		buf := make([]byte, 32<<10)
		for n := 0; n < bigStream; n += len(buf) {
			if _, err := w.Write(buf); err != nil {
				return
			}
			b.written.Add(int64(len(buf)))
		}
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 32<<10)
		for b.read.Load() < 1<<20 {
			n, err := r.Body.Read(buf)
			b.read.Add(int64(n))
			if err != nil {
				break
			}
		}
		select {
		case <-b.release:
		case <-r.Context().Done():
			return
		}
		n, err := io.CopyBuffer(io.Discard, r.Body, buf)
		b.read.Add(n)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		fmt.Fprint(w, b.read.Load())
	})
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 1; i <= 3; i++ {
			fmt.Fprintf(w, "data: event %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-b.ack:
			case <-r.Context().Done():
				return
			case <-time.After(waitTimeout):
				return
			}
		}
	})
	mux.HandleFunc("/trailer", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "body with a trailer")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Checksum", "abc123")
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		select {
		case <-b.release:
		default:
			close(b.release)
		}
		srv.Close()
	})
	return b
}

// plateau polls n until it stops moving (the pipeline is full) and returns
// its value; bounded.
func plateau(n func() int64) int64 {
	last, same := n(), 0
	for i := 0; i < 200 && same < 5; i++ {
		time.Sleep(50 * time.Millisecond)
		if cur := n(); cur == last {
			same++
		} else {
			last, same = cur, 0
		}
	}
	return last
}

// A 64 MiB download through sluice: while the client pauses the upstream
// is held back (backpressure, not buffering) and sluice's memory stays
// bounded; then every byte arrives.
func TestHostileStreamDownload(t *testing.T) {
	t.Parallel()
	b := newStreamBackend(t)
	e := startEdge(t, b.ln.Addr().String(), "")
	base := rssKB(t, e.p.cmd.Process.Pid)
	res, err := newClient().Get("http://" + e.addr + "/big")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if _, err := io.CopyN(io.Discard, res.Body, 1<<20); err != nil {
		t.Fatal(err)
	}
	held := plateau(b.written.Load) - 1<<20
	queued := socketQueued(t, e.addr, b.ln.Addr().String())
	if held-queued > maxInFlight {
		t.Errorf("upstream wrote %d MiB more than the client read, %d MiB of it outside socket queues: sluice buffers the stream", held>>20, (held-queued)>>20)
	}
	peak := rssKB(t, e.p.cmd.Process.Pid)
	t.Logf("held back: %d KiB in flight, %d KiB of it in socket queues; RSS %d -> %d KiB", held>>10, queued>>10, base, peak)
	n, err := io.CopyN(io.Discard, res.Body, bigStream/2)
	if err != nil {
		t.Fatalf("after %d bytes: %v", n, err)
	}
	if r := rssKB(t, e.p.cmd.Process.Pid); r > peak {
		peak = r
	}
	rest, err := io.Copy(io.Discard, res.Body)
	if err != nil || 1<<20+n+rest != bigStream {
		t.Fatalf("got %d bytes (%v), want %d", 1<<20+n+rest, err, bigStream)
	}
	if growth := peak - base; growth > maxRSSGrowthKB {
		t.Errorf("sluice RSS grew by %d MiB during a 64 MiB stream", growth>>10)
	}
}

// countingReader produces n bytes and counts how many were taken.
type countingReader struct {
	n   int64
	pos atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	left := r.n - r.pos.Load()
	if left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	clear(p)
	r.pos.Add(int64(len(p)))
	return len(p), nil
}

// A 64 MiB chunked upload to an upstream that stops reading: the client is
// held back rather than sluice buffering the body; once the upstream reads
// again every byte arrives.
func TestHostileStreamUpload(t *testing.T) {
	t.Parallel()
	b := newStreamBackend(t)
	e := startEdge(t, b.ln.Addr().String(), "")
	base := rssKB(t, e.p.cmd.Process.Pid)
	body := &countingReader{n: bigStream}
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// No length: the client sends it chunked.
		res, err := newClient().Post("http://"+e.addr+"/upload", "application/octet-stream", io.NopCloser(body))
		if err != nil {
			done <- result{err: err}
			return
		}
		defer res.Body.Close()
		bb, err := io.ReadAll(res.Body)
		done <- result{res.StatusCode, string(bb), err}
	}()
	held := plateau(body.pos.Load) - b.read.Load()
	queued := socketQueued(t, e.addr, b.ln.Addr().String())
	if held-queued > maxInFlight {
		t.Errorf("client sent %d MiB more than the upstream read, %d MiB of it outside socket queues: sluice buffers the upload", held>>20, (held-queued)>>20)
	}
	t.Logf("held back: %d KiB in flight, %d KiB of it in socket queues", held>>10, queued>>10)
	if growth := rssKB(t, e.p.cmd.Process.Pid) - base; growth > maxRSSGrowthKB {
		t.Errorf("sluice RSS grew by %d MiB holding an upload", growth>>10)
	}
	close(b.release)
	select {
	case r := <-done:
		if r.err != nil || r.code != 200 || r.body != fmt.Sprint(bigStream) {
			t.Fatalf("upload answer %d %q %v, want 200 %d", r.code, r.body, r.err, bigStream)
		}
	case <-time.After(2 * waitTimeout):
		t.Fatal("upload did not finish")
	}
}

// Server-sent events arrive one at a time: the upstream sends the next
// event only after the client has read the previous one.
func TestHostileStreamSSE(t *testing.T) {
	t.Parallel()
	b := newStreamBackend(t)
	e := startEdge(t, b.ln.Addr().String(), "")
	res, err := newClient().Get("http://" + e.addr + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("content-type %q", ct)
	}
	br := bufio.NewReader(res.Body)
	for i := 1; i <= 3; i++ {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: event %d\n", i) {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		if blank, _ := br.ReadString('\n'); blank != "\n" {
			t.Fatalf("event %d not terminated: %q", i, blank)
		}
		select {
		case b.ack <- struct{}{}:
		case <-time.After(waitTimeout):
			t.Fatal("upstream stopped")
		}
	}
}

// Trailers of a chunked HTTP/1.1 response reach the client.
func TestHostileStreamTrailers(t *testing.T) {
	t.Parallel()
	b := newStreamBackend(t)
	e := startEdge(t, b.ln.Addr().String(), "")
	c := dialRaw(t, e.addr)
	c.send("GET /trailer HTTP/1.1\r\nHost: h.test\r\nTE: trailers\r\nConnection: close\r\n\r\n")
	raw := c.rest()
	res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), nil)
	if err != nil {
		t.Fatalf("%v in %q", err, raw)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil || string(body) != "body with a trailer" {
		t.Fatalf("body %q %v", body, err)
	}
	if got := res.Trailer.Get("X-Checksum"); got != "abc123" {
		t.Errorf("trailer X-Checksum = %q; response was %q", got, raw)
	}
}

// An "Upgrade: h2c" request's body is subject to max_body_bytes like any
// other: a 64 MiB chunked upgrade body must neither be buffered whole in
// memory nor reach past the limit.
func TestHostileH2CUpgradeBody(t *testing.T) {
	t.Parallel()
	b := newStreamBackend(t)
	e := startEdge(t, b.ln.Addr().String(), "  max_body_bytes: 1MiB\n")
	base := rssKB(t, e.p.cmd.Process.Pid)
	c := dialRaw(t, e.addr)
	c.send("POST /upload HTTP/1.1\r\nHost: h.test\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n" +
		"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nTransfer-Encoding: chunked\r\n\r\n")
	var sent atomic.Int64
	go func() {
		chunk := []byte(fmt.Sprintf("%x\r\n%s\r\n", 32<<10, strings.Repeat("z", 32<<10)))
		for sent.Load() < bigStream {
			if _, err := c.c.Write(chunk); err != nil {
				return
			}
			sent.Add(32 << 10)
		}
		c.c.Write([]byte("0\r\n\r\n"))
	}()
	held := plateau(sent.Load)
	queued := socketQueued(t, e.addr, b.ln.Addr().String())
	growth := rssKB(t, e.p.cmd.Process.Pid) - base
	t.Logf("client sent %d KiB, %d KiB of it in socket queues; sluice RSS grew %d KiB", held>>10, queued>>10, growth)
	if held-queued-b.read.Load() > maxInFlight {
		t.Errorf("sluice took %d MiB of an upgrade body over a 1 MiB limit", (held-queued)>>20)
	}
	if growth > 32<<10 {
		t.Errorf("sluice RSS grew by %d MiB holding an upgrade body", growth>>10)
	}
}

// Trailer fields that framing, routing, authentication or sluice's own
// headers depend on never cross sluice, in either direction: a recipient
// that merges trailers into the header section would otherwise take them
// as headers sluice never checked (RFC 9110 §6.5.1). Other trailers pass.
func TestHostileTrailerFields(t *testing.T) {
	t.Parallel()
	up := serveRaw(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		var got []string
		for k := range req.Trailer {
			got = append(got, k)
		}
		slices.Sort(got)
		echo := strings.Join(got, ",")
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Ok, Content-Length, Set-Cookie\r\nConnection: close\r\n\r\n"+
			"%x\r\n%s\r\n0\r\nX-Ok: 1\r\nContent-Length: 99\r\nSet-Cookie: a=b\r\nX-Request-Id: evil\r\nTransfer-Encoding: chunked\r\n\r\n", len(echo), echo)
	})
	e := startEdge(t, up.Addr().String(), "")
	c := dialRaw(t, e.addr)
	c.send("POST /t HTTP/1.1\r\nHost: h.test\r\nTE: trailers\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n" +
		"5\r\nhello\r\n0\r\nX-T: 1\r\nX-Forwarded-For: 6.6.6.6\r\nAuthorization: Basic eDp5\r\nCookie: s=1\r\n\r\n")
	raw := c.rest()
	res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), nil)
	if err != nil {
		t.Fatalf("%v in %q", err, raw)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("body: %v in %q", err, raw)
	}
	if string(body) != "X-T" {
		t.Errorf("the upstream got request trailers %q, want only X-T", body)
	}
	var got []string
	for k := range res.Trailer {
		got = append(got, k)
	}
	slices.Sort(got)
	if strings.Join(got, ",") != "X-Ok" || res.Trailer.Get("X-Ok") != "1" {
		t.Errorf("client got trailers %v, want only X-Ok: 1; answer:\n%s", res.Trailer, raw)
	}
}
