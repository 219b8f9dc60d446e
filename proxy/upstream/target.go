package upstream

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Target is one upstream address. Its exported fields are fixed at parse
// time; its health and load state is kept in atomics so that the proxy's
// hot path never takes a lock.
type Target struct {
	// URL is the normalised upstream URL: scheme, host:port (default port
	// filled in) and any path and query the user gave. For unix targets
	// Path and Opaque hold the socket path and Host is empty.
	URL *url.URL
	// Scheme is one of "http", "https", "h2c", "unix" (HTTP/1.1 over a
	// unix socket) or "tcp" (raw stream, no HTTP).
	Scheme string
	// Network and Addr are what to pass to net.Dial: "tcp" and host:port,
	// or "unix" and the socket path.
	Network string
	Addr    string
	// ServerName is the TLS SNI and verification name for https targets
	// (the URL's host without port); empty for other schemes.
	ServerName string

	inflight atomic.Int64
	// down is the active health checker's verdict.
	down atomic.Bool
	// ejectedUntil is the passive ejection deadline in UnixNano; 0 when
	// not ejected. A past value means "ejected, recovery not yet reported".
	ejectedUntil atomic.Int64
	fails        atomic.Int64 // passive failure streak
	failStart    atomic.Int64 // UnixNano of the streak's first failure

	// Active-check streaks, touched only by the pool's checker goroutine.
	okRun, badRun int
}

// Healthy reports whether the target may receive traffic: the active
// health check (if any) last passed and it is not passively ejected.
func (t *Target) Healthy() bool {
	if t.down.Load() {
		return false
	}
	until := t.ejectedUntil.Load()
	return until == 0 || time.Now().UnixNano() >= until
}

// InFlight is the number of exchanges currently using the target (between
// Pool.Begin and Pool.End).
func (t *Target) InFlight() int64 { return t.inflight.Load() }

// String is the target as a URL, for logs and metrics labels.
func (t *Target) String() string {
	if t.Network == "unix" {
		return "unix:" + t.Addr
	}
	return t.Scheme + "://" + t.Addr
}

// ParseTarget parses one upstream as written by the user:
//
//	8080                        127.0.0.1:8080 over HTTP
//	host:port, [::1]:port       HTTP to that address
//	http://h[:p], https://h[:p] HTTP/1.1 (gRPC requests: h2); default ports 80, 443
//	h2c://h[:p]                 cleartext HTTP/2 (gRPC backends); default port 80
//	unix:/path/to.sock          HTTP/1.1 over a unix socket (also unix:///path)
//	tcp://host:port             raw TCP (tcp/tls endpoints)
func ParseTarget(s string) (*Target, error) {
	t, err := parseTarget(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", s, err)
	}
	return t, nil
}

func parseTarget(s string) (*Target, error) {
	if s == "" {
		return nil, fmt.Errorf("empty address")
	}
	if isDigits(s) {
		if _, err := parsePort(s); err != nil {
			return nil, err
		}
		return hostTarget("http", "127.0.0.1", s, ""), nil
	}
	if rest, ok := strings.CutPrefix(s, "unix:"); ok {
		path := strings.TrimPrefix(rest, "//")
		if path == "" {
			return nil, fmt.Errorf("unix: needs a socket path, e.g. unix:/run/app.sock")
		}
		return &Target{
			// Opaque too, so URL.String() prints unix:/path, not unix:///path
			// (or, for relative paths, a URL whose host is the path).
			URL:     &url.URL{Scheme: "unix", Path: path, Opaque: path},
			Scheme:  "unix",
			Network: "unix",
			Addr:    path,
		}, nil
	}
	if !strings.Contains(s, "://") {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("want a port, host:port or a URL (http://, https://, h2c://, unix:, tcp://)")
		}
		if host == "" {
			host = "127.0.0.1"
		}
		if _, err := parsePort(port); err != nil {
			return nil, err
		}
		return hostTarget("http", host, port, ""), nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	scheme := strings.ToLower(u.Scheme)
	var defPort string
	switch scheme {
	case "http", "h2c":
		defPort = "80"
	case "https":
		defPort = "443"
	case "tcp":
	default:
		return nil, fmt.Errorf("unsupported scheme %q (want http, https, h2c, unix or tcp)", u.Scheme)
	}
	if u.User != nil {
		return nil, fmt.Errorf("credentials in upstream URLs are not supported")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return nil, fmt.Errorf("missing host")
	}
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return nil, fmt.Errorf("empty port")
		}
		if defPort == "" {
			return nil, fmt.Errorf("tcp:// needs a port, e.g. tcp://%s:5432", host)
		}
		port = defPort
	} else if _, err := parsePort(port); err != nil {
		return nil, err
	}
	if scheme == "tcp" && (u.Path != "" && u.Path != "/" || u.RawQuery != "") {
		return nil, fmt.Errorf("tcp:// takes no path or query")
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		// Requests keep their own path; a prefix here would be silently
		// ignored, so it is refused (as Caddy does).
		return nil, fmt.Errorf("an upstream URL takes no path or query (got %q); change request paths with a url-rewrite policy action", u.Path+queryOf(u))
	}
	sni := ""
	if scheme == "https" {
		sni = host
	}
	return hostTarget(scheme, host, port, sni), nil
}

func queryOf(u *url.URL) string {
	if u.RawQuery == "" {
		return ""
	}
	return "?" + u.RawQuery
}

func hostTarget(scheme, host, port, sni string) *Target {
	addr := net.JoinHostPort(host, port)
	return &Target{
		URL:        &url.URL{Scheme: scheme, Host: addr},
		Scheme:     scheme,
		Network:    "tcp",
		Addr:       addr,
		ServerName: sni,
	}
}

func parsePort(p string) (int, error) {
	n, err := strconv.Atoi(p)
	if err != nil || !isDigits(p) || n < 1 || n > 65535 {
		return 0, fmt.Errorf("invalid port %q (want 1-65535)", p)
	}
	return n, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
