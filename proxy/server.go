package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/internal/reload"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// Server is the proxy: its listeners and the current routing table.
type Server struct {
	opts    Options
	log     *slog.Logger
	access  *slog.Logger
	limits  Limits
	trusted []netip.Prefix
	metrics *metrics
	h2c     http.Handler // handles "Upgrade: h2c" requests

	tbl reload.Value[*table]

	ctx    context.Context // cancelled when Shutdown gives up draining
	cancel context.CancelFunc

	mu        sync.Mutex
	listeners map[string]*listener // by listen key, from Apply
	extra     map[*listener]struct{}
	closed    bool

	hijackMu sync.Mutex
	hijacked map[net.Conn]struct{} // upgraded and piped conns, closed at the drain deadline

	upMu sync.Mutex
	ups  map[string]*upstreams // live upstream sets by settings, shared across reloads

	ready atomic.Bool
}

// ErrServerClosed is returned by Apply and ServeListener after Shutdown.
var ErrServerClosed = errors.New("proxy: server closed")

// New creates a Server with no endpoints; call Apply to configure it.
func New(opts Options) *Server {
	s := &Server{
		opts:      opts,
		log:       opts.Log,
		access:    opts.AccessLog,
		limits:    opts.Limits.withDefaults(DefaultLimits()),
		trusted:   opts.TrustedProxies,
		listeners: map[string]*listener{},
		extra:     map[*listener]struct{}{},
		hijacked:  map[net.Conn]struct{}{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if err := opts.Limits.validate(); err != nil {
		// New cannot fail; the config layer should have refused this.
		s.log.Error("invalid limits; using the defaults", "err", err)
		s.limits = DefaultLimits()
	}
	switch opts.HTTP1Engine {
	case "", EngineSluice, EngineNetHTTP:
	default:
		s.log.Error("unknown HTTP/1 engine; using sluice's", "engine", opts.HTTP1Engine)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.metrics = newMetrics(opts.Registerer)
	s.h2c = h2c.NewHandler(http.HandlerFunc(s.serveRequest), &http2.Server{
		IdleTimeout: s.limits.IdleTimeout,
	})
	return s
}

// Check builds every endpoint and the routing table as Apply does and
// returns the first problem, without opening a listener or changing what s
// serves: what `sluice serve --check` runs. Clashes with the listeners of
// other processes (a port in use) show only when Apply binds.
func (s *Server) Check(cfgs []EndpointConfig) error {
	t, err := s.build(cfgs)
	if err != nil {
		return err
	}
	t.close()
	return nil
}

// build builds every endpoint and the routing table over them; on an error
// nothing is left open.
func (s *Server) build(cfgs []EndpointConfig) (*table, error) {
	eps := make([]*endpoint, 0, len(cfgs))
	fail := func(err error) (*table, error) {
		for _, e := range eps {
			e.close()
		}
		return nil, err
	}
	for i, c := range cfgs {
		e, err := s.buildEndpoint(c)
		if err != nil {
			return fail(fmt.Errorf("proxy: endpoints[%d] %s: %w", i, c.URL, err))
		}
		eps = append(eps, e)
	}
	t, err := buildTable(eps)
	if err != nil {
		return fail(fmt.Errorf("proxy: %w", err))
	}
	return t, nil
}

// Apply validates and builds every endpoint, opens the listeners it needs
// and then swaps the routing table in one step. On any error nothing
// changed and the error names the endpoint. Listeners whose address stays
// keep their connections; removed ones stop accepting and drain.
func (s *Server) Apply(cfgs []EndpointConfig) error {
	t, err := s.build(cfgs)
	if err != nil {
		return err
	}
	eps := t.endpoints
	fail := func(err error) error {
		t.close()
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fail(ErrServerClosed)
	}
	var opened []*listener
	for key := range t.binds {
		if s.listeners[key] != nil {
			continue
		}
		ln, err := net.Listen("tcp", key)
		if err != nil {
			for _, l := range opened {
				l.ln.Close()
			}
			var urls []string
			for _, e := range eps {
				if e.bind == key {
					urls = append(urls, e.ep.URL)
				}
			}
			return fail(fmt.Errorf("proxy: endpoint %s: listen %s: %w", strings.Join(urls, ", "), key, err))
		}
		opened = append(opened, s.newListener(key, ln))
	}

	for _, e := range eps {
		e.start(s.ctx)
	}
	s.tbl.Swap(t, (*table).close)
	for _, l := range opened {
		s.listeners[l.key] = l
		go l.serve()
	}
	for key, l := range s.listeners {
		if t.binds[key] == nil {
			delete(s.listeners, key)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), s.limits.ShutdownTimeout)
				defer cancel()
				l.shutdown(ctx)
			}()
		}
	}
	s.ready.Store(true)
	return nil
}

// ServeListener serves connections from a caller-provided listener (e.g. a
// tunnel handing over streams) with the current table: every non-internal
// http, https and tls endpoint, chosen by SNI and Host. It returns when ln
// is closed or the server shuts down.
func (s *Server) ServeListener(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	l := s.newListener("", ln)
	s.extra[l] = struct{}{}
	s.mu.Unlock()
	l.serve()
	s.mu.Lock()
	delete(s.extra, l)
	s.mu.Unlock()
	return nil
}

// Addrs reports the real address of each configured listen key, so that
// "127.0.0.1:0" becomes the OS-chosen port.
func (s *Server) Addrs() map[string]net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]net.Addr, len(s.listeners))
	for k, l := range s.listeners {
		m[k] = l.ln.Addr()
	}
	return m
}

// Ready reports whether a configuration was applied and the server is not
// shutting down (for /readyz).
func (s *Server) Ready() bool { return s.ready.Load() }

// Shutdown stops accepting, lets in-flight requests finish until ctx ends,
// closes idle keep-alive connections, and at the deadline closes whatever
// is left (including upgraded and piped connections). It then releases the
// routing table and its upstream pools.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.Store(false)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ls := make([]*listener, 0, len(s.listeners)+len(s.extra))
	for _, l := range s.listeners {
		ls = append(ls, l)
	}
	for l := range s.extra {
		ls = append(ls, l)
	}
	s.mu.Unlock()

	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.shutdown(ctx)
		}()
	}
	done := make(chan struct{})
	go func() {
		// Upgraded and piped connections are not seen by net/http's drain:
		// wait for them too, as long as ctx allows.
		wg.Wait()
		for {
			s.hijackMu.Lock()
			n := len(s.hijacked)
			s.hijackMu.Unlock()
			if n == 0 || ctx.Err() != nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.cancel()
	s.closeHijacked()
	<-done
	s.tbl.Close()
	return err
}

func (s *Server) trackHijacked(c net.Conn, add bool) {
	s.hijackMu.Lock()
	if add {
		s.hijacked[c] = struct{}{}
	} else {
		delete(s.hijacked, c)
	}
	s.hijackMu.Unlock()
}

func (s *Server) closeHijacked() {
	s.hijackMu.Lock()
	cs := make([]net.Conn, 0, len(s.hijacked))
	for c := range s.hijacked {
		cs = append(cs, c)
	}
	s.hijackMu.Unlock()
	// Closed outside the lock: a tracked conn's Close untracks itself.
	for _, c := range cs {
		c.Close()
	}
}
