package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicehq/sluice/exchange"
)

func TestApplyAtomicAndKeepsListeners(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{})
	slow := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(arrived)
			<-release
		}
		io.WriteString(w, "v1")
	})
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(slow.URL)})
	a := addr(t, s, "127.0.0.1:0")

	// A request in flight across the swap finishes on the old table.
	done := make(chan string, 1)
	go func() {
		_, body := get(t, "http://"+a+"/slow")
		done <- body
	}()
	// Only once the request reached the upstream is it in flight on the
	// old table (without this the Apply below could overtake it).
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow request never reached the upstream")
	}
	// Keep-alive client connection across the swap.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	getC := func() string {
		res, err := c.Get("http://" + a + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return string(b)
	}
	if got := getC(); got != "v1" {
		t.Fatal(got)
	}

	// A broken config changes nothing and names the endpoint.
	err := s.Apply([]EndpointConfig{
		{URL: "http://:80", Listen: "127.0.0.1:0", Upstream: up(named(t, "v2"))},
		{URL: "ftp://nope", Listen: "127.0.0.1:0"},
	})
	if err == nil || !strings.Contains(err.Error(), "endpoints[1] ftp://nope") {
		t.Fatalf("bad apply: %v", err)
	}
	err = s.Apply([]EndpointConfig{{URL: "http://a.test:80", Listen: "127.0.0.1:0", Upstream: up(named(t, "v2"))},
		{URL: "http://a.test:80", Listen: "127.0.0.1:0", Upstream: up(named(t, "v2"))}})
	if err == nil || !strings.Contains(err.Error(), "duplicate host a.test") {
		t.Fatalf("duplicate: %v", err)
	}
	err = s.Apply([]EndpointConfig{{URL: "http://:80", Listen: "127.0.0.1:0", Upstream: up(named(t, "v2")), Limits: &Limits{DialTimeout: -1}}})
	if err == nil || !strings.Contains(err.Error(), "endpoints[0] http://:80: limits: dial_timeout must not be negative") {
		t.Fatalf("negative limit: %v", err)
	}
	// A port that cannot be bound names the endpoint.
	busy, _ := net.Listen("tcp", "127.0.0.1:0")
	defer busy.Close()
	err = s.Apply([]EndpointConfig{{URL: "http://:80", Listen: busy.Addr().String(), Upstream: up(named(t, "v2"))}})
	if err == nil || !strings.Contains(err.Error(), "endpoint http://:80: listen "+busy.Addr().String()) {
		t.Fatalf("busy port: %v", err)
	}
	if got := getC(); got != "v1" {
		t.Fatalf("after failed apply: %q", got)
	}

	if err := s.Apply([]EndpointConfig{
		{URL: "http://:80", Listen: "127.0.0.1:0", Upstream: up(named(t, "v2"))},
		{URL: "http://:81", Listen: "127.0.0.2:0", Upstream: up(named(t, "new-port"))},
	}); err != nil {
		t.Fatal(err)
	}
	if addr(t, s, "127.0.0.1:0") != a {
		t.Fatal("listener was replaced")
	}
	if got := getC(); got != "v2" { // same keep-alive connection, new table
		t.Fatalf("after apply: %q", got)
	}
	if _, body := get(t, "http://"+addr(t, s, "127.0.0.2:0")+"/"); body != "new-port" {
		t.Fatalf("new listener: %q", body)
	}
	close(release)
	if got := <-done; got != "v1" {
		t.Fatalf("in-flight request: %q", got)
	}

	// Removing an endpoint closes its listener.
	a2 := addr(t, s, "127.0.0.2:0")
	if err := s.Apply([]EndpointConfig{{URL: "http://:80", Listen: "127.0.0.1:0", Upstream: up(named(t, "v3"))}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Addrs()["127.0.0.2:0"]; ok {
		t.Fatal("removed listener still reported")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", a2)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("removed listener still accepts")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestShutdownDrains(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "finished")
	})
	s := New(Options{Log: quiet})
	if err := s.Apply([]EndpointConfig{{URL: "http://:80", Listen: "127.0.0.1:0", Upstream: up(b.URL)}}); err != nil {
		t.Fatal(err)
	}
	if !s.Ready() {
		t.Fatal("not ready")
	}
	a := addr(t, s, "127.0.0.1:0")
	done := make(chan string, 1)
	go func() {
		_, body := get(t, "http://"+a+"/")
		done <- body
	}()
	<-started
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	// Stops accepting while the request is still running.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", a)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s.Ready() {
		t.Fatal("ready while shutting down")
	}
	close(release)
	if got := <-done; got != "finished" {
		t.Fatalf("in-flight: %q", got)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

func TestShutdownClosesHijackedAtDeadline(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 4096)
				c.Read(buf)
				io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	s := New(Options{Log: quiet})
	if err := s.Apply([]EndpointConfig{{URL: "http://:80", Listen: "127.0.0.1:0", Upstream: up("http://" + ln.Addr().String())}}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr(t, s, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	head := make([]byte, 12)
	io.ReadFull(c, head)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err == nil {
		t.Fatal("expected the deadline to pass with a piped connection open")
	}
	// The rest of the 101 head, then EOF (not the 5s read deadline).
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("piped connection not closed by shutdown: %v", err)
	}
}

func TestMetricsAndAccessLog(t *testing.T) {
	reg := prometheus.NewRegistry()
	var buf bytes.Buffer
	var mu sync.Mutex
	al := slog.New(slog.NewJSONHandler(lockedWriter{&buf, &mu}, nil))
	s := start(t, Options{Registerer: reg, AccessLog: al},
		EndpointConfig{URL: "http://m.test:80", Upstream: up(named(t, "hello"))})
	a := addr(t, s, "127.0.0.1:0")
	var ids []string
	for i := 0; i < 3; i++ {
		res, _ := get(t, "http://"+a+"/p?q", "Host", "m.test")
		ids = append(ids, res.Header.Get("X-Request-Id"))
	}
	if n := metricValue(t, reg, "sluice_http_requests_total", "code", "200"); n != 3 {
		t.Errorf("requests_total = %v", n)
	}
	if n := metricValue(t, reg, "sluice_http_response_bytes_total", "endpoint", "ep_m.test_80"); n != 15 {
		t.Errorf("response bytes = %v", n)
	}
	if n := metricValue(t, reg, "sluice_http_request_duration_seconds", "endpoint", "ep_m.test_80"); n != 3 {
		t.Errorf("duration samples = %v", n)
	}
	if n := metricValue(t, reg, "sluice_upstream_healthy", "endpoint", "ep_m.test_80"); n != 1 {
		t.Errorf("upstream healthy = %v", n)
	}
	mu.Lock()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	mu.Unlock()
	if len(lines) != 3 {
		t.Fatalf("access log lines: %q", lines)
	}
	var rec map[string]any
	json.Unmarshal([]byte(lines[0]), &rec)
	for k, v := range map[string]any{"request_id": ids[0], "method": "GET", "host": "m.test", "path": "/p",
		"status": 200.0, "bytes_out": 5.0, "client_ip": "127.0.0.1", "endpoint": "ep_m.test_80"} {
		if rec[k] != v {
			t.Errorf("access log %s = %v, want %v (%s)", k, rec[k], v, lines[0])
		}
	}
	if rec["upstream"] == "" || rec["duration_ms"] == nil {
		t.Errorf("access log: %s", lines[0])
	}
}

// metricValue finds the first sample of name with label k=v: a counter's
// or gauge's value, a histogram's sample count.
func metricValue(t *testing.T, reg *prometheus.Registry, name, k, v string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					switch {
					case m.Counter != nil:
						return m.Counter.GetValue()
					case m.Gauge != nil:
						return m.Gauge.GetValue()
					case m.Histogram != nil:
						return float64(m.Histogram.GetSampleCount())
					}
				}
			}
		}
	}
	t.Fatalf("no metric %s{%s=%q}", name, k, v)
	return 0
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// tunnelConn is a stream that knows its real client, as a tunnel's does.
type tunnelConn struct {
	net.Conn
	client netip.AddrPort
}

func (c tunnelConn) ClientAddr() netip.AddrPort { return c.client }

type tunnelListener struct {
	net.Listener
}

func (l tunnelListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tunnelConn{c, netip.MustParseAddrPort("198.51.100.7:5555")}, nil
}

func TestServeListenerTakesClientAddr(t *testing.T) {
	var got netip.AddrPort
	hk := &hooks{connect: func(c *exchange.Conn) error {
		got = c.ClientAddr
		return nil
	}}
	s := start(t, Options{}, EndpointConfig{URL: "http://tun.test:8080", Upstream: up(echoHeaders(t)), Hooks: hk})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	served := make(chan error, 1)
	go func() { served <- s.ServeListener(tunnelListener{ln}) }()
	h, _ := headersVia(t, ln.Addr().String(), "GET / HTTP/1.1\r\nHost: tun.test:8080\r\n\r\n")
	if got.String() != "198.51.100.7:5555" || h.Get("X-Forwarded-For") != "198.51.100.7" {
		t.Fatalf("client %v xff %q", got, h.Get("X-Forwarded-For"))
	}
	ln.Close()
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("ServeListener did not return after its listener closed")
	}
}
