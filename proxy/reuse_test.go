package proxy

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/proxy/upstream"
)

// A reload that keeps an endpoint's upstream settings keeps its upstream
// connections and health state; one that changes them starts afresh, and
// the old set closes once nothing uses it.
func TestApplyKeepsUpstreams(t *testing.T) {
	var conns atomic.Int32
	b := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	b.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	down := "127.0.0.1:1" // nothing listens: health checks fail
	hc := &upstream.HealthCheck{Interval: time.Hour, Timeout: 200 * time.Millisecond, Unhealthy: 1}
	cfg := func(extraHost string, balance string) []EndpointConfig {
		c := []EndpointConfig{{URL: "http://:80", Listen: "127.0.0.1:0",
			Upstream: upstream.Config{URLs: []string{b.URL, "http://" + down}, Balance: balance, HealthCheck: hc}}}
		if extraHost != "" {
			c = append(c, EndpointConfig{URL: "http://" + extraHost + ":80", Listen: "127.0.0.1:0", Upstream: up(b.URL)})
		}
		return c
	}
	s := start(t, Options{}, cfg("", "")...)
	a := addr(t, s, "127.0.0.1:0")
	ep := func() *endpoint {
		v := s.tbl.Acquire()
		defer v.Release()
		return v.Val.binds["127.0.0.1:0"].plain.any
	}
	waitDown := func(p *upstream.Pool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			for _, tg := range p.Targets() {
				if tg.Addr == down && !tg.Healthy() {
					return
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("the dead upstream was not marked down")
	}
	waitDown(ep().pool)
	for i := 0; i < 5; i++ {
		if _, body := get(t, "http://"+a+"/"); body != "ok" {
			t.Fatalf("before reload: %q", body)
		}
	}
	before, first := conns.Load(), ep().ups

	// Same upstream settings, another endpoint added: same set, no new
	// connection, and the dead target is still known down (the next check
	// is an hour away).
	if err := s.Apply(cfg("other.test", "")); err != nil {
		t.Fatal(err)
	}
	if ep().ups != first {
		t.Fatal("the upstream set was rebuilt although its settings did not change")
	}
	for i := 0; i < 5; i++ {
		if _, body := get(t, "http://"+a+"/"); body != "ok" {
			t.Fatalf("after reload: %q", body)
		}
	}
	if n := conns.Load(); n != before {
		t.Errorf("%d new upstream connections after a reload that kept the upstream", n-before)
	}

	// Changed settings: a new set; the old one closes after the drain.
	if err := s.Apply(cfg("other.test", "least_requests")); err != nil {
		t.Fatal(err)
	}
	if ep().ups == first {
		t.Fatal("the upstream set was kept although balancing changed")
	}
	deadline := time.Now().Add(5 * time.Second)
	for first.refs.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := first.refs.Load(); n != 0 {
		t.Errorf("old upstream set still has %d references", n)
	}
	if _, body := get(t, "http://"+a+"/"); body != "ok" {
		t.Fatalf("after a changed reload: %q", body)
	}
}
