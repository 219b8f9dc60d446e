package upstream

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testcert"
)

func fastCheck(path string) *HealthCheck {
	return &HealthCheck{Path: path, Interval: 20 * time.Millisecond, Timeout: time.Second}
}

// flaky is a backend whose /healthz status the test controls.
func flaky(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var status atomic.Int32
	status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || r.Header.Get("User-Agent") != "sluice-health-check" {
			w.WriteHeader(404)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	return srv, &status
}

func TestActiveCheckDownAndUp(t *testing.T) {
	srv, status := flaky(t)
	p := newPool(t, Config{URLs: []string{srv.URL, backends(t, 1)[0]}, HealthCheck: fastCheck("/healthz")})
	changes := watchChanges(p)
	p.Start(context.Background())
	tg := p.Targets()[0]

	status.Store(500)
	waitChange(t, changes, tg, false)
	if tg.Healthy() {
		t.Fatal("Healthy() true after the check marked it down")
	}
	for range 6 {
		if got, _ := p.Pick(nil); got == tg {
			t.Fatal("down target picked")
		}
	}
	status.Store(302) // redirects count as up
	waitChange(t, changes, tg, true)
	if !tg.Healthy() {
		t.Fatal("Healthy() false after recovery")
	}
}

func TestActiveCheckThresholds(t *testing.T) {
	p := newPool(t, Config{URLs: []string{"8080"}, HealthCheck: &HealthCheck{Path: "/", Healthy: 3, Unhealthy: 2}})
	tg := p.Targets()[0]
	fail := net.ErrClosed
	p.verdict(tg, fail)
	if !tg.Healthy() {
		t.Fatal("down after 1 of 2 failures")
	}
	p.verdict(tg, nil) // resets the failure streak
	p.verdict(tg, fail)
	if !tg.Healthy() {
		t.Fatal("streak not reset by a pass")
	}
	p.verdict(tg, fail)
	if tg.Healthy() {
		t.Fatal("up after 2 consecutive failures")
	}
	p.verdict(tg, nil)
	p.verdict(tg, nil)
	if tg.Healthy() {
		t.Fatal("up after 2 of 3 passes")
	}
	p.verdict(tg, nil)
	if !tg.Healthy() {
		t.Fatal("down after 3 passes")
	}
}

func TestTCPCheck(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	p := newPool(t, Config{URLs: []string{"tcp://" + l.Addr().String()}, HealthCheck: fastCheck("/ignored-for-tcp")})
	changes := watchChanges(p)
	p.Start(context.Background())
	l.Close()
	waitChange(t, changes, p.Targets()[0], false)
}

func TestUnixSocketTarget(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "app.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var status atomic.Int32
	status.Store(200)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	p := newPool(t, Config{URLs: []string{"unix:" + sock}, HealthCheck: fastCheck("/healthz")})
	tg := p.Targets()[0]
	// The target dials as the proxy would.
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, tg.Network, tg.Addr)
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://localhost/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	changes := watchChanges(p)
	p.Start(context.Background())
	status.Store(503)
	waitChange(t, changes, tg, false)
	status.Store(204)
	waitChange(t, changes, tg, true)
}

func TestHTTPSCheckUsesTLSConfigAndSNI(t *testing.T) {
	var sni atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sni.Store(r.TLS.ServerName)
		w.WriteHeader(500)
	}))
	certFile, keyFile := testcert.Generate(t, t.TempDir(), "localhost")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	// https://localhost:port must send SNI "localhost" and verify the
	// certificate against Config.TLS's roots.
	u := "https://localhost:" + hostPortPort(t, srv.Listener.Addr())
	p := newPool(t, Config{
		URLs:        []string{u},
		HealthCheck: fastCheck("/healthz"),
		TLS:         &tls.Config{RootCAs: testcert.Pool(t, certFile)},
	})
	changes := watchChanges(p)
	p.Start(context.Background())
	// Down because of the 500 status, which proves TLS itself worked.
	waitChange(t, changes, p.Targets()[0], false)
	if got, _ := sni.Load().(string); got != "localhost" {
		t.Fatalf("SNI = %q, want localhost", got)
	}
}

func TestH2CCheck(t *testing.T) {
	var proto atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		w.WriteHeader(500)
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	p := newPool(t, Config{URLs: []string{"h2c://" + srv.Listener.Addr().String()}, HealthCheck: fastCheck("/healthz")})
	changes := watchChanges(p)
	p.Start(context.Background())
	waitChange(t, changes, p.Targets()[0], false)
	if got, _ := proto.Load().(string); got != "HTTP/2.0" {
		t.Fatalf("h2c check spoke %q", got)
	}
}

func TestCheckerStopsOnContextCancel(t *testing.T) {
	srv, _ := flaky(t)
	p := newPool(t, Config{URLs: []string{srv.URL}, HealthCheck: fastCheck("/healthz")})
	ctx, cancel := context.WithCancel(context.Background())
	p.Start(ctx)
	cancel()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatal("checker still running after ctx cancel")
	}
}

func hostPortPort(t *testing.T, a net.Addr) string {
	_, port, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}
