package admin

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns the registry sluice hands to every package through
// Options.Registerer, with the Go runtime and process collectors in it. A
// dedicated registry (not prometheus.DefaultRegisterer) keeps tests and
// several servers in one process from colliding.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Server serves the admin endpoints. The zero value is not usable; call New.
type Server struct {
	gatherer prometheus.Gatherer
	ready    atomic.Bool
	mux      *http.ServeMux
	srv      *http.Server
}

// New returns a Server exposing metrics from g. It starts not ready.
func New(g prometheus.Gatherer) *Server {
	s := &Server{gatherer: g, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !s.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	// Profiles, as Caddy's admin endpoint offers them: hot paths are
	// measured on the running binary, not guessed. The admin listener is
	// meant for loopback or a private network.
	s.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	s.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	s.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	return s
}

// SetReady flips /readyz: true once listeners are up, false while draining.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Ready reports what /readyz answers.
func (s *Server) Ready() bool { return s.ready.Load() }

// Handler returns the admin mux (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.mux }

// Serve serves on ln until Shutdown. It returns nil after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the listener and waits for in-flight admin requests.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.srv.Shutdown(ctx)
}
