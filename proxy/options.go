package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/internal/reload"
	"github.com/sluicehq/sluice/proxy/certs"
	"github.com/sluicehq/sluice/proxy/upstream"
)

// Options configure a Server for its whole life; the endpoints are set (and
// changed) with Apply.
type Options struct {
	// Log receives operational and error lines (each error line of a request
	// carries its request_id). nil means slog.Default().
	Log *slog.Logger
	// AccessLog, when set, gets one JSON-friendly line per request.
	AccessLog *slog.Logger
	// Registerer receives the proxy's Prometheus collectors; nil = no metrics.
	Registerer prometheus.Registerer
	// TrustedProxies are the peers whose X-Forwarded-For / Forwarded headers
	// are believed: the client IP is taken from them and the chain is
	// extended. A request from any other peer starts a new chain.
	TrustedProxies []netip.Prefix
	// Limits applies to every endpoint without its own; zero fields take
	// DefaultLimits' values.
	Limits Limits
	// Watcher, when set, reloads https certificates when their files change.
	Watcher *reload.Watcher
	// HTTP1Engine chooses the server of HTTP/1.x client connections:
	// EngineSluice ("sluice", also ""; the default) or EngineNetHTTP
	// ("net/http", the former server, kept as a fallback). HTTP/2 is served
	// by golang.org/x/net/http2 either way.
	HTTP1Engine string
}

// Limits are the timeouts and size limits. A zero field means "default";
// for MaxBodyBytes and WriteTimeout a negative value means "no limit".
type Limits struct {
	// ReadHeaderTimeout bounds the TLS handshake and the reading of a
	// request's header (slowloris). Default 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes client keep-alive connections idle this long.
	// Default 120s.
	IdleTimeout time.Duration
	// BodyReadTimeout is the longest wait for the next bytes of a request
	// body (nginx's client_body_timeout): a stalled upload answers 408 if
	// the response has not begun, and the connection is closed. Default
	// 60s. HTTP/1.x on the own engine.
	BodyReadTimeout time.Duration
	// WriteTimeout bounds writing a whole response; it also cuts long
	// streams (SSE, gRPC), so the default is off (<0 or 0).
	WriteTimeout time.Duration
	// DialTimeout bounds connecting to an upstream (TCP + TLS). Default 10s;
	// exceeding it answers 504.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the upstream's response
	// header after the request was sent. Default 60s; exceeding it answers
	// 504.
	ResponseHeaderTimeout time.Duration
	// UpstreamStallTimeout bounds how long an HTTP/1.1 upstream may send
	// nothing more of an answer it began, or take nothing more of an
	// upload (nginx's proxy_read_timeout and proxy_send_timeout, which
	// default to 60s). Default 5m, long enough for quiet event streams.
	UpstreamStallTimeout time.Duration
	// UpstreamIdleTimeout closes pooled upstream connections unused this
	// long. Default 90s.
	UpstreamIdleTimeout time.Duration
	// ShutdownTimeout bounds draining when a listener is removed by Apply.
	// Default 30s.
	ShutdownTimeout time.Duration
	// MaxHeaderBytes is the largest request header accepted; more answers
	// 431. Default 64 KiB.
	MaxHeaderBytes int
	// MaxBodyBytes is the largest request body accepted, whether declared
	// by Content-Length or streamed chunked; more answers 413. Default
	// 100 MiB; negative = unlimited.
	MaxBodyBytes int64
	// MaxIdleConnsPerHost bounds each upstream target's idle connection
	// stack. Default 256.
	MaxIdleConnsPerHost int
}

// DefaultLimits returns the defaults described on Limits.
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout:     10 * time.Second,
		IdleTimeout:           120 * time.Second,
		BodyReadTimeout:       60 * time.Second,
		DialTimeout:           10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		UpstreamStallTimeout:  5 * time.Minute,
		UpstreamIdleTimeout:   90 * time.Second,
		ShutdownTimeout:       30 * time.Second,
		MaxHeaderBytes:        64 << 10,
		MaxBodyBytes:          100 << 20,
		MaxIdleConnsPerHost:   1024,
	}
}

// validate reports limits that cannot work (negative timeouts or sizes
// where negative means nothing).
func (l Limits) validate() error {
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"read_header_timeout", l.ReadHeaderTimeout}, {"idle_timeout", l.IdleTimeout},
		{"body_read_timeout", l.BodyReadTimeout},
		{"dial_timeout", l.DialTimeout}, {"response_header_timeout", l.ResponseHeaderTimeout},
		{"upstream_stall_timeout", l.UpstreamStallTimeout},
		{"upstream_idle_timeout", l.UpstreamIdleTimeout}, {"shutdown_timeout", l.ShutdownTimeout},
	} {
		if f.d < 0 {
			return fmt.Errorf("limits: %s must not be negative (%s)", f.name, f.d)
		}
	}
	if l.MaxHeaderBytes < 0 {
		return fmt.Errorf("limits: max_header_bytes must not be negative (%d)", l.MaxHeaderBytes)
	}
	if l.MaxIdleConnsPerHost < 0 {
		return fmt.Errorf("limits: upstream_idle_conns must not be negative (%d)", l.MaxIdleConnsPerHost)
	}
	return nil
}

// withDefaults fills zero fields from d.
func (l Limits) withDefaults(d Limits) Limits {
	orDefault(&l.ReadHeaderTimeout, d.ReadHeaderTimeout)
	orDefault(&l.IdleTimeout, d.IdleTimeout)
	orDefault(&l.BodyReadTimeout, d.BodyReadTimeout)
	orDefault(&l.WriteTimeout, d.WriteTimeout)
	orDefault(&l.DialTimeout, d.DialTimeout)
	orDefault(&l.ResponseHeaderTimeout, d.ResponseHeaderTimeout)
	orDefault(&l.UpstreamStallTimeout, d.UpstreamStallTimeout)
	orDefault(&l.UpstreamIdleTimeout, d.UpstreamIdleTimeout)
	orDefault(&l.ShutdownTimeout, d.ShutdownTimeout)
	orDefault(&l.MaxHeaderBytes, d.MaxHeaderBytes)
	orDefault(&l.MaxBodyBytes, d.MaxBodyBytes)
	orDefault(&l.MaxIdleConnsPerHost, d.MaxIdleConnsPerHost)
	return l
}

// orDefault sets *v to d when *v is zero.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// EndpointConfig is one endpoint as the config layer hands it over.
type EndpointConfig struct {
	// URL is what the endpoint answers for: http://host:port,
	// https://host:port (TLS terminated here), http://:8080 (any host),
	// tcp://host:port, tls://host:port (SNI passthrough), or a *.internal
	// host (no listener; reachable only through forward-internal). A
	// missing port takes the scheme's default (80, 443; tcp needs one).
	URL string
	// Listen overrides the bind address. Default: host:port when the URL's
	// host is an IP or localhost, else ":port". "127.0.0.1:0" binds an OS
	// chosen port; Server.Addrs reports it under this key.
	Listen string
	// Upstream is where requests go (URLs, balancing, health checks).
	Upstream upstream.Config
	// TLS holds the certificate/key files for https termination.
	TLS []certs.Pair
	// InsecureSkipVerify turns off verification of upstream certificates.
	InsecureSkipVerify bool
	// Hooks is the endpoint's policy; nil means none.
	Hooks exchange.Hooks
	// Dial, when set, replaces net.Dialer for this endpoint's upstream
	// connections (e.g. a tunnel session reaching an agent). It gets the
	// target's Network and Addr and must honour ctx; DialTimeout applies.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Limits overrides the server's limits for this endpoint's requests
	// (body size, dial/response timeouts, idle pool size). Listener-level
	// limits (header timeout/size, idle timeout) come from the server.
	Limits *Limits
}
