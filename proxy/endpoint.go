package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
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
	ep       exchange.Endpoint
	kind     epKind
	host     string // lower-case host, "" = any, "*.x" wildcard
	bind     string // listen key; "" for internal endpoints
	hooks    exchange.Hooks
	limits   Limits
	pool     *upstream.Pool // nil when no upstream is configured
	h1       map[*upstream.Target]*connPool
	h2       *h2Transports
	certs    *certs.Store
	tlsConf  *tls.Config // for https termination
	upTLS    *tls.Config // template for upstream TLS
	metrics  *epMetrics
	cancelHC context.CancelFunc
	dialFn   func(ctx context.Context, network, addr string) (net.Conn, error)
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
	if e.pool != nil && (p.kind == kindHTTP || p.kind == kindHTTPS) {
		for _, t := range e.pool.Targets() {
			if t.Scheme == "tcp" {
				return nil, fmt.Errorf("upstream %s: a tcp upstream needs a tcp:// or tls:// endpoint", t.URL)
			}
			e.h1[t] = newConnPool(t, e)
		}
	}
	e.h2 = newH2Transports(e)
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

// start begins active health checks and feeds the health gauge.
func (e *endpoint) start(ctx context.Context) {
	if e.pool == nil {
		return
	}
	ctx, e.cancelHC = context.WithCancel(ctx)
	if e.metrics != nil {
		for _, t := range e.pool.Targets() {
			e.metrics.setHealthy(t, t.Healthy())
		}
		e.pool.OnHealthChange(e.metrics.setHealthy)
	}
	go e.pool.Start(ctx)
}

// close releases everything the endpoint holds. It runs once the table that
// owns it has drained.
func (e *endpoint) close() {
	if e.cancelHC != nil {
		e.cancelHC()
	}
	if e.pool != nil {
		e.pool.Close()
	}
	for _, p := range e.h1 {
		p.close()
	}
	if e.h2 != nil {
		e.h2.close()
	}
	if e.certs != nil {
		e.certs.Close()
	}
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
	switch {
	case e.host == "":
		if h.any != nil {
			return fmt.Errorf("duplicate catch-all endpoint (also %s)", h.any.ep.URL)
		}
		h.any = e
	case strings.HasPrefix(e.host, "*."):
		for i, w := range h.wild {
			if w.host == e.host {
				return fmt.Errorf("duplicate host %s (also %s)", e.host, w.ep.URL)
			}
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
		if o := h.exact[e.host]; o != nil {
			return fmt.Errorf("duplicate host %s (also %s)", e.host, o.ep.URL)
		}
		h.exact[e.host] = e
	}
	return nil
}

func (h *hostRouter) empty() bool { return len(h.order) == 0 }

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
