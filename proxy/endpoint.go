package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/proxy/certs"
	"github.com/sluicehq/sluice/proxy/upstream"
)

// epKind is how an endpoint's connections are handled.
type epKind uint8

const (
	kindHTTP  epKind = iota // plaintext HTTP, routed by Host
	kindHTTPS               // TLS terminated here, routed by SNI then Host
	kindTCP                 // bytes piped to the upstream
	kindTLS                 // TLS passthrough routed by SNI
)

// endpoint is one built endpoint: everything a request needs, prepared at
// Apply time so that nothing is parsed or looked up by name per request.
type endpoint struct {
	ep      exchange.Endpoint
	kind    epKind
	host    string // lower-case host, "" = any, "*.x" wildcard
	bind    string // listen key; "" for internal endpoints
	hooks   exchange.Hooks
	limits  Limits
	pool    *upstream.Pool // nil when no upstream is configured
	h1      map[*upstream.Target]*connPool
	h2      *h2Transports
	ups     *upstreams // owns pool, h1 and h2; nil when none
	certs   *certs.Store
	tlsConf *tls.Config // for https termination
	upTLS   *tls.Config // template for upstream TLS
	metrics *epMetrics
	dialFn  func(ctx context.Context, network, addr string) (net.Conn, error)
}

// dial connects to an upstream address within DialTimeout.
func (e *endpoint) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, e.limits.DialTimeout)
	defer cancel()
	if e.dialFn != nil {
		return e.dialFn(ctx, network, addr)
	}
	d := net.Dialer{KeepAlive: 30 * time.Second}
	return d.DialContext(ctx, network, addr)
}

// parsedURL is the part of an endpoint URL that routing needs.
type parsedURL struct {
	kind     epKind
	scheme   string
	host     string
	port     int
	internal bool
}

func parseEndpointURL(raw string) (parsedURL, error) {
	var p parsedURL
	u, err := url.Parse(raw)
	if err != nil {
		return p, fmt.Errorf("url %q: %w", raw, err)
	}
	p.scheme = strings.ToLower(u.Scheme)
	def := 0
	switch p.scheme {
	case "http":
		p.kind, def = kindHTTP, 80
	case "https":
		p.kind, def = kindHTTPS, 443
	case "tcp":
		p.kind = kindTCP
	case "tls":
		p.kind, def = kindTLS, 443
	default:
		return p, fmt.Errorf("url %q: scheme must be http, https, tcp or tls", raw)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return p, fmt.Errorf("url %q: only scheme://host:port is allowed", raw)
	}
	p.host = strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if ps := u.Port(); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 0 || n > 65535 {
			return p, fmt.Errorf("url %q: bad port %q", raw, ps)
		}
		p.port = n
	} else {
		p.port = def
	}
	p.internal = p.host == "internal" || strings.HasSuffix(p.host, ".internal")
	if p.port == 0 && !p.internal {
		return p, fmt.Errorf("url %q: needs a port", raw)
	}
	if strings.Contains(p.host, "*") && !(strings.HasPrefix(p.host, "*.") && !strings.Contains(p.host[2:], "*")) {
		return p, fmt.Errorf("url %q: a wildcard must be a leading \"*.\" label", raw)
	}
	if p.kind == kindTCP && p.host != "" && net.ParseIP(p.host) == nil && p.host != "localhost" && !p.internal {
		// tcp carries no name to route by; the host only picks the bind.
		p.host = ""
	}
	return p, nil
}

// bindAddr is the default listen address of an endpoint URL.
func (p parsedURL) bindAddr() string {
	port := strconv.Itoa(p.port)
	if p.host == "localhost" || net.ParseIP(p.host) != nil {
		return net.JoinHostPort(p.host, port)
	}
	return ":" + port
}

// buildEndpoint prepares one endpoint; on error nothing stays open.
func (s *Server) buildEndpoint(cfg EndpointConfig) (_ *endpoint, err error) {
	p, err := parseEndpointURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	e := &endpoint{
		kind:   p.kind,
		host:   p.host,
		hooks:  cfg.Hooks,
		dialFn: cfg.Dial,
		ep: exchange.Endpoint{
			ID:       "ep_" + p.host + "_" + strconv.Itoa(p.port),
			URL:      cfg.URL,
			Scheme:   p.scheme,
			Host:     p.host,
			Port:     p.port,
			Internal: p.internal,
		},
	}
	if p.host == "" {
		e.ep.ID = "ep_any_" + strconv.Itoa(p.port)
	}
	if !p.internal {
		e.bind = cfg.Listen
		if e.bind == "" {
			e.bind = p.bindAddr()
		}
		if _, _, err := net.SplitHostPort(e.bind); err != nil {
			return nil, fmt.Errorf("listen %q: %w", e.bind, err)
		}
	}
	e.limits = s.limits
	if cfg.Limits != nil {
		if err := cfg.Limits.validate(); err != nil {
			return nil, err
		}
		e.limits = cfg.Limits.withDefaults(s.limits)
	}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	e.upTLS = &tls.Config{InsecureSkipVerify: cfg.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	key, shareable := upstreamsKey(p.kind, cfg, e.limits)
	if u := s.sharedUpstreams(key, shareable); u != nil {
		// A reload that keeps these upstream settings: same balancer,
		// health state and idle connections.
		e.ups, e.pool, e.h1, e.h2 = u, u.pool, u.h1, u.h2
	} else {
		if len(cfg.Upstream.URLs) > 0 {
			ucfg := cfg.Upstream
			if ucfg.TLS == nil {
				ucfg.TLS = e.upTLS
			}
			pool, err := upstream.New(ucfg, s.log)
			if err != nil {
				return nil, fmt.Errorf("upstream: %w", err)
			}
			e.pool = pool
		}
		e.h1 = map[*upstream.Target]*connPool{}
		e.h2 = newH2Transports(e)
		e.ups = &upstreams{s: s, pool: e.pool, h1: e.h1, h2: e.h2}
		e.ups.refs.Store(1)
		if e.pool != nil && (p.kind == kindHTTP || p.kind == kindHTTPS) {
			for _, t := range e.pool.Targets() {
				if t.Scheme == "tcp" {
					return nil, fmt.Errorf("upstream %s: a tcp upstream needs a tcp:// or tls:// endpoint", t.URL)
				}
				e.h1[t] = newConnPool(t, e)
			}
		}
		if shareable {
			e.ups.key = key
			s.upMu.Lock()
			if s.ups == nil {
				s.ups = map[string]*upstreams{}
			}
			s.ups[key] = e.ups
			s.upMu.Unlock()
		}
	}
	if p.kind == kindHTTPS && !p.internal {
		if len(cfg.TLS) == 0 {
			return nil, errors.New("https endpoint needs tls cert and key")
		}
		e.certs = certs.NewStore(s.log)
		if err := e.certs.Load(cfg.TLS); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		if s.opts.Watcher != nil {
			if err := e.certs.Watch(s.opts.Watcher); err != nil {
				return nil, fmt.Errorf("tls: watch: %w", err)
			}
		}
		e.tlsConf = &tls.Config{
			GetCertificate: e.certs.GetCertificate,
			NextProtos:     []string{"h2", "http/1.1"},
			MinVersion:     tls.VersionTLS12,
		}
	}
	e.metrics = s.metrics.forEndpoint(e)
	return e, nil
}

// start begins active health checks (once per upstream set) and feeds
// the health gauge.
func (e *endpoint) start(ctx context.Context) {
	if e.pool == nil {
		return
	}
	if e.metrics != nil {
		for _, t := range e.pool.Targets() {
			e.metrics.setHealthy(t, t.Healthy())
		}
		e.pool.OnHealthChange(e.metrics.setHealthy)
	}
	e.ups.start(ctx)
}

// close releases everything the endpoint holds. It runs once the table that
// owns it has drained.
func (e *endpoint) close() {
	if e.ups != nil {
		e.ups.release()
	}
	if e.certs != nil {
		e.certs.Close()
	}
}

// upstreams is an endpoint's balancer (with its health state) and
// connection pools. A reload that keeps an endpoint's upstream settings
// hands the same set to the new endpoint, so idle connections and health
// survive it; the set closes when its last endpoint does.
type upstreams struct {
	s    *Server
	key  string // "" when not shared
	pool *upstream.Pool
	h1   map[*upstream.Target]*connPool
	h2   *h2Transports
	refs atomic.Int32

	once   sync.Once
	cancel context.CancelFunc
}

func (u *upstreams) start(ctx context.Context) {
	u.once.Do(func() {
		// Health checks outlive any one Apply: they stop with the set.
		ctx, u.cancel = context.WithCancel(context.WithoutCancel(ctx))
		go u.pool.Start(ctx)
	})
}

func (u *upstreams) release() {
	s := u.s
	s.upMu.Lock()
	last := u.refs.Add(-1) == 0
	if last && u.key != "" && s.ups[u.key] == u {
		delete(s.ups, u.key)
	}
	s.upMu.Unlock()
	if !last {
		return
	}
	u.once.Do(func() {}) // a set never started does not start now
	if u.cancel != nil {
		u.cancel()
	}
	if u.pool != nil {
		u.pool.Close()
	}
	for _, p := range u.h1 {
		p.close()
	}
	if u.h2 != nil {
		u.h2.close()
	}
}

// sharedUpstreams takes a reference on the live set built with the same
// settings, if any.
func (s *Server) sharedUpstreams(key string, shareable bool) *upstreams {
	if !shareable {
		return nil
	}
	s.upMu.Lock()
	defer s.upMu.Unlock()
	u := s.ups[key]
	if u == nil || u.refs.Load() == 0 {
		return nil
	}
	u.refs.Add(1)
	return u
}

// upstreamsKey names everything an upstream set is built from. Settings
// that cannot be compared (a custom dialer or TLS configuration) are never
// shared.
func upstreamsKey(kind epKind, cfg EndpointConfig, l Limits) (string, bool) {
	u := cfg.Upstream
	if len(u.URLs) == 0 || cfg.Dial != nil || u.TLS != nil {
		return "", false
	}
	hc := "none"
	if u.HealthCheck != nil {
		hc = fmt.Sprintf("%+v", *u.HealthCheck)
	}
	return fmt.Sprintf("%v|%q|%s|%s|%+v|%v|%s|%s|%s|%s|%d", kind == kindHTTP || kind == kindHTTPS, u.URLs, u.Balance, hc,
		u.Passive, cfg.InsecureSkipVerify, l.DialTimeout, l.ResponseHeaderTimeout, l.UpstreamStallTimeout, l.UpstreamIdleTimeout, l.MaxIdleConnsPerHost), true
}

// hostRouter picks an endpoint by host: exact name, then the longest
// matching "*.suffix" wildcard, then the catch-all endpoint (empty host).
type hostRouter struct {
	exact map[string]*endpoint
	wild  []*endpoint // longest suffix first
	any   *endpoint
	order []*endpoint // as configured
}

func (h *hostRouter) add(e *endpoint) error {
	if err := h.insert(e); err != nil {
		return err
	}
	h.order = append(h.order, e)
	return nil
}

func (h *hostRouter) insert(e *endpoint) error {
	if o := h.has(e); o != nil {
		if e.host == "" {
			return fmt.Errorf("duplicate catch-all endpoint (also %s)", o.ep.URL)
		}
		return fmt.Errorf("duplicate host %s (also %s)", e.host, o.ep.URL)
	}
	switch {
	case e.host == "":
		h.any = e
	case strings.HasPrefix(e.host, "*."):
		for i, w := range h.wild {
			if len(e.host) > len(w.host) {
				h.wild = append(h.wild[:i], append([]*endpoint{e}, h.wild[i:]...)...)
				return nil
			}
		}
		h.wild = append(h.wild, e)
	default:
		if h.exact == nil {
			h.exact = map[string]*endpoint{}
		}
		h.exact[e.host] = e
	}
	return nil
}

func (h *hostRouter) empty() bool { return len(h.order) == 0 }

// has returns the endpoint configured for exactly the host e answers for
// (the same name, wildcard or catch-all), if any.
func (h *hostRouter) has(e *endpoint) *endpoint {
	switch {
	case e.host == "":
		return h.any
	case strings.HasPrefix(e.host, "*."):
		for _, w := range h.wild {
			if w.host == e.host {
				return w
			}
		}
		return nil
	}
	return h.exact[e.host]
}

// specificity ranks how closely e's host matches a name it matched: an
// exact name over any wildcard, a longer wildcard over a shorter one, any
// wildcard over the catch-all. Zero for no endpoint.
func specificity(e *endpoint) int {
	switch {
	case e == nil:
		return 0
	case e.host == "":
		return 1
	case strings.HasPrefix(e.host, "*."):
		return 1 + len(e.host)
	}
	return math.MaxInt
}

// match finds the endpoint for a host (already lower-cased, port stripped).
func (h *hostRouter) match(host string) *endpoint {
	if e := h.exact[host]; e != nil {
		return e
	}
	for _, w := range h.wild {
		// "*.example.com" matches "a.example.com" and "a.b.example.com".
		if len(host) > len(w.host)-1 && host[len(host)-(len(w.host)-1):] == w.host[1:] {
			return w
		}
	}
	return h.any
}

// first is the endpoint a plaintext connection's OnConnect runs with, before
// any Host is known: the catch-all endpoint, else the first configured.
func (h *hostRouter) first() *endpoint {
	if h.any != nil {
		return h.any
	}
	if len(h.order) > 0 {
		return h.order[0]
	}
	return nil
}

// normHost lower-cases a Host header and strips its port and trailing dot,
// allocating only when the host is not already in that form.
func normHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}
