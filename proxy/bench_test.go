package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/proxy/upstream"
)

// BenchmarkProxyGet1K measures one keep-alive GET of a 1 KiB body through
// the proxy to a loopback backend, the shape wrk -c64 drives.
func BenchmarkProxyGet1K(b *testing.B) { benchGet1K(b, Options{}) }

// benchGet1K drives parallel keep-alive GETs of a 1 KiB body through a
// proxy built with opts.
func benchGet1K(b *testing.B, opts Options) {
	body := strings.Repeat("x", 1024)
	be := backend(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	})
	s := start(b, opts, EndpointConfig{URL: "http://:80", Upstream: upstream.Config{URLs: []string{be.URL}}})
	a := addr(b, s, "127.0.0.1:0")
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DialContext: (&net.Dialer{}).DialContext}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	url := "http://" + a + "/bench"
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 4096)
		for pb.Next() {
			res, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			for {
				if _, err := res.Body.Read(buf); err != nil {
					break
				}
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
}

// BenchmarkServeExchange measures the proxy's own work per request without
// a client: the handler called directly with a recorder-like writer.
func BenchmarkHandlerDirect(b *testing.B) {
	body := strings.Repeat("x", 1024)
	be := backend(b, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	})
	s := start(b, Options{}, EndpointConfig{URL: "http://:80", Upstream: upstream.Config{URLs: []string{be.URL}}})
	var l *listener
	for _, x := range s.listeners {
		l = x
	}
	ci := &connInfo{l: l, peerIP: "127.0.0.1"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, _ := http.NewRequest("GET", "http://example.com/bench", nil)
		r = r.WithContext(withConn(r.Context(), ci))
		w := &nopWriter{h: http.Header{}}
		s.serveRequest(w, r)
		if w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
}

type nopWriter struct {
	h    http.Header
	code int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) WriteHeader(c int)           { w.code = c }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkDirectGet1K is the baseline: the same client and backend
// without the proxy, so that ratios survive a noisy machine.
func BenchmarkDirectGet1K(b *testing.B) {
	body := strings.Repeat("x", 1024)
	be := backend(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	})
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := c.Get(be.URL + "/bench")
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	})
}

// TestServeForLoad serves SLUICE_LOAD_LISTEN -> SLUICE_LOAD_UPSTREAM for
// SLUICE_LOAD_SECONDS, for profiling under an external load generator
// (wrk). Skipped unless the variables are set.
func TestServeForLoad(t *testing.T) {
	ln, upURL := os.Getenv("SLUICE_LOAD_LISTEN"), os.Getenv("SLUICE_LOAD_UPSTREAM")
	if ln == "" || upURL == "" {
		t.Skip("set SLUICE_LOAD_LISTEN and SLUICE_LOAD_UPSTREAM")
	}
	secs, _ := strconv.Atoi(os.Getenv("SLUICE_LOAD_SECONDS"))
	if secs == 0 {
		secs = 10
	}
	s := New(Options{Log: quiet, HTTP1Engine: os.Getenv("SLUICE_LOAD_ENGINE")})
	if err := s.Apply([]EndpointConfig{{URL: "http://:80", Listen: ln, Upstream: up(upURL)}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Duration(secs) * time.Second)
	s.Shutdown(context.Background())
}
