package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/net/http2"
)

// Leak slack: a few goroutines come and go on their own (GC, timers,
// the admin request itself); pooled idle upstream connections are
// descriptors sluice keeps on purpose (up to one per concurrent client).
const (
	leakGoroutineSlack = 10
	leakFDSlack        = 16
	leakWorkers        = 8
)

// newLeakBackend serves / (small), /big (endless stream), /upload (reads
// the body), /reset (resets the connection), /ws (echo; /ws?close=1 closes
// after the first message).
func newLeakBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := websocket.Upgrader{}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 32<<10)
		for i := 0; i < 2048; i++ {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // until sluice gives up and closes
	})
	mux.HandleFunc("/reset", func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			if c.WriteMessage(mt, m) != nil || r.URL.Query().Get("close") != "" {
				return
			}
		}
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// burst sends n GETs of path over short connections from leakWorkers
// clients and returns how many did not answer want.
func burst(addr, path string, n, want int) int { return burstHost(addr, "", path, n, want) }

// burstHost is burst with a Host header.
func burstHost(addr, host, path string, n, want int) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	bad := 0
	for w := 0; w < leakWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient()
			for i := w; i < n; i += leakWorkers {
				req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
				if host != "" {
					req.Host = host
				}
				res, err := c.Do(req)
				ok := err == nil && res.StatusCode == want
				if err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				if !ok {
					mu.Lock()
					bad++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return bad
}

// wsSession opens a WebSocket through sluice, echoes one message and ends
// it from the client side, or lets the server end it.
func wsSession(t *testing.T, addr string, serverCloses bool) {
	t.Helper()
	u := "ws://" + addr + "/ws"
	if serverCloses {
		u += "?close=1"
	}
	d := websocket.Dialer{HandshakeTimeout: waitTimeout}
	c, _, err := d.Dial(u, nil)
	if err != nil {
		t.Fatalf("websocket: %v", err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	if err := c.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, m, err := c.ReadMessage(); err != nil || string(m) != "hi" {
		t.Fatalf("echo %q %v", m, err)
	}
	if serverCloses {
		if _, _, err := c.ReadMessage(); err == nil {
			t.Fatal("server-closed session still open")
		}
		return
	}
	c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
}

// h2cSessions runs requests over h2c (prior knowledge), some of them
// cancelled mid-stream, then drops the connection.
func h2cSessions(t *testing.T, addr string) {
	t.Helper()
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, a string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, a)
	}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: waitTimeout}
	for i := 0; i < 50; i++ {
		res, err := c.Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("h2c: %v", err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.ProtoMajor != 2 || res.StatusCode != 200 {
			t.Fatalf("h2c answer %s %d", res.Proto, res.StatusCode)
		}
	}
	for i := 0; i < 10; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/big", nil)
		res, err := c.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("h2c big: %v", err)
		}
		io.CopyN(io.Discard, res.Body, 64<<10)
		cancel() // resets the stream mid-response
		res.Body.Close()
	}
}

// checkSettled fails with a goroutine dump and the descriptor list when
// sluice does not come back near base.
func (e *edge) checkSettled(t *testing.T, base sluiceStats, what string) {
	t.Helper()
	s, ok := e.settle(t, base, leakGoroutineSlack, leakFDSlack)
	t.Logf("%s: goroutines %d -> %d, fds %d -> %d, rss %d -> %d KiB", what,
		base.goroutines, s.goroutines, base.fds, s.fds, base.rssKB, s.rssKB)
	if !ok {
		t.Errorf("%s: sluice did not return to its baseline: goroutines %d (base %d), fds %d (base %d)\n%s\n%s",
			what, s.goroutines, base.goroutines, s.fds, base.fds, e.goroutineDump(t), e.fdList())
	}
}

// After thousands of requests, aborted downloads and uploads, WebSocket
// sessions ended by either side and failing upstreams, sluice's goroutines
// and descriptors return near where they started.
func TestHostileLeaks(t *testing.T) {
	t.Parallel()
	dead := freePort(t) // nothing listens there: connection refused
	e := startEdge(t, newLeakBackend(t), "  response_header_timeout: 1s\n  read_header_timeout: 1s\n")
	e.addEndpoint(t, "http://dead.test", dead)
	if bad := burst(e.addr, "/", 100, 200); bad != 0 {
		t.Fatalf("warm-up: %d failures", bad)
	}
	wsSession(t, e.addr, false)
	base, _ := e.settle(t, e.stats(t), 0, 0)

	if bad := burst(e.addr, "/", 2000, 200); bad != 0 {
		t.Errorf("2000 short connections: %d failures", bad)
	}
	for i := 0; i < 20; i++ {
		// Client leaves mid-response.
		c := dialRaw(t, e.addr)
		c.send("GET /big HTTP/1.1\r\nHost: h.test\r\n\r\n")
		if _, err := io.ReadFull(c.br, make([]byte, 64<<10)); err != nil {
			t.Fatalf("big: %v", err)
		}
		c.c.Close()
		// Client leaves mid-upload.
		c = dialRaw(t, e.addr)
		c.send("POST /upload HTTP/1.1\r\nHost: h.test\r\nContent-Length: 1048576\r\n\r\n" + strings.Repeat("u", 10<<10))
		c.c.Close()
		// Client leaves mid-header.
		c = dialRaw(t, e.addr)
		c.send("GET / HTTP/1.1\r\nHost: h.")
		c.c.Close()
	}
	for i := 0; i < 10; i++ {
		wsSession(t, e.addr, false)
		wsSession(t, e.addr, true)
	}
	if bad := burst(e.addr, "/reset", 40, 502); bad != 0 {
		t.Errorf("resetting upstream: %d answers were not 502", bad)
	}
	if bad := burstHost(e.addr, "dead.test", "/", 40, 502); bad != 0 {
		t.Errorf("refused upstream: %d answers were not 502", bad)
	}
	if bad := burst(e.addr, "/hang", 8, 504); bad != 0 {
		t.Errorf("silent upstream: %d answers were not 504", bad)
	}
	for i := 0; i < 8; i++ {
		// Client leaves while sluice waits for the upstream's header.
		c := dialRaw(t, e.addr)
		c.send("GET /hang HTTP/1.1\r\nHost: h.test\r\n\r\n")
		c.c.Close()
	}
	for i := 0; i < 10; i++ {
		// Stalled mid-header and left open: sluice must cut these itself.
		c := dialRaw(t, e.addr)
		c.send("GET / HTTP/1.1\r\nHost: h.")
	}
	h2cSessions(t, e.addr)
	e.checkSettled(t, base, "after 2000 requests, aborts, websockets and upstream failures")
}

// Reloading the config 50 times (a listener added and removed, the policy
// changed) does not grow goroutines or descriptors.
func TestHostileReloadLeaks(t *testing.T) {
	t.Parallel()
	up := newLeakBackend(t)
	dir := t.TempDir()
	second := freePort(t)
	conf := func(i int) string {
		s := fmt.Sprintf(`
admin: 127.0.0.1:0
log: {format: json}
endpoints:
  - url: http://:80
    listen: 127.0.0.1:0
    upstream: http://%s
    traffic_policy:
      on_http_response:
        - actions:
            - type: add-headers
              config: {headers: {x-gen: "%d"}}
`, up, i)
		if i%2 == 1 {
			s += fmt.Sprintf("  - url: http://:%s\n    listen: %s\n    upstream: http://%s\n", strings.Split(second, ":")[1], second, up)
		}
		return s
	}
	cfg := writeConfig(t, dir, conf(0))
	p := start(t, "serve", "-c", cfg)
	e := &edge{p: p, addr: p.addr("127.0.0.1:0"), admin: p.adminAddr(), dir: dir}
	p.waitLog(0, "started", msg("sluice started"))
	gen := func(i int) {
		t.Helper()
		if code, _, h := get(t, e.addr, "", "/"); code != 200 || h.Get("X-Gen") != fmt.Sprint(i) {
			t.Fatalf("generation %d: %d x-gen=%q", i, code, h.Get("X-Gen"))
		}
	}
	reload := func(i int) {
		t.Helper()
		n := p.nLines()
		writeConfig(t, dir, conf(i))
		p.waitLog(n, "config reloaded", msg("config reloaded"))
		gen(i)
		if i%2 == 1 {
			if code, _, _ := get(t, second, "", "/"); code != 200 {
				t.Fatalf("generation %d: second listener answered %d", i, code)
			}
		}
	}
	for i := 1; i <= 2; i++ {
		reload(i)
	}
	base, _ := e.settle(t, e.stats(t), 0, 0)
	for i := 3; i <= 52; i++ {
		reload(i)
	}
	e.checkSettled(t, base, "after 50 reloads")
}
