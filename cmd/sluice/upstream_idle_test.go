package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// upstream_idle_conns bounds the idle connections kept per upstream target
// and upstream_idle_timeout how long one is kept: what is not kept is
// dialled again. Counted by the connections the upstream accepts.
func TestUpstreamIdleLimits(t *testing.T) {
	t.Parallel()
	var conns, arrived atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// The four requests of a wave are all in flight at once.
			want := (arrived.Add(1) + 3) / 4 * 4
			for end := time.Now().Add(5 * time.Second); arrived.Load() < want && time.Now().Before(end); {
				time.Sleep(5 * time.Millisecond)
			}
			io.WriteString(w, "ok")
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	cfg := writeConfig(t, t.TempDir(), fmt.Sprintf(`
log: {format: json}
limits: {upstream_idle_conns: 1}
endpoints:
  - url: http://one.test
    listen: 127.0.0.1:0
    upstream: http://%[1]s
  - url: http://many.test
    listen: 127.0.0.1:0
    upstream: http://%[1]s
    limits: {upstream_idle_conns: 100}
  - url: http://brief.test
    listen: 127.0.0.1:0
    upstream: http://%[1]s
    limits: {upstream_idle_conns: 100, upstream_idle_timeout: 300ms}
`, ln.Addr()))
	p := start(t, "serve", "-c", cfg)
	addr := p.addr("127.0.0.1:0")
	// wave sends four requests at once and returns how many connections
	// the upstream accepted meanwhile.
	wave := func(host string) int64 {
		before := conns.Load()
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
				req.Host = host
				res, err := newClient().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					t.Errorf("%s: %d", host, res.StatusCode)
				}
			}()
		}
		wg.Wait()
		return conns.Load() - before
	}
	for _, c := range []struct {
		host        string
		pause       time.Duration
		first, next int64
	}{
		{"one.test", 0, 4, 3},             // one of four kept: three dialled again
		{"many.test", 0, 4, 0},            // all four kept
		{"brief.test", 0, 4, 0},           // kept while fresh...
		{"brief.test", time.Second, 0, 4}, // ...and dialled again once stale
	} {
		if c.first > 0 {
			if n := wave(c.host); n != c.first {
				t.Errorf("%s: first wave dialled %d connections, want %d", c.host, n, c.first)
			}
		}
		time.Sleep(c.pause)
		if n := wave(c.host); n != c.next {
			t.Errorf("%s: wave after %v dialled %d connections, want %d", c.host, c.pause, n, c.next)
		}
	}
}
