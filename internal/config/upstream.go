package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// ParseUpstream turns what a user writes as an upstream into the canonical
// form the proxy takes. kind is the endpoint kind: http/https (HTTP
// upstreams) or tcp/tls (byte streams).
//
//	8080                  -> http://127.0.0.1:8080   (tcp/tls: tcp://127.0.0.1:8080)
//	host:8080             -> http://host:8080        (tcp/tls: tcp://host:8080)
//	http://, https://, h2c:// URLs are kept (HTTP only; tcp:// for tcp/tls)
//	unix:/run/app.sock    -> kept
func ParseUpstream(kind, s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("empty upstream")
	}
	stream := kind == "tcp" || kind == "tls"
	if isDigits(s) {
		if _, err := parsePort(s); err != nil {
			return "", err
		}
		if stream {
			return "tcp://127.0.0.1:" + s, nil
		}
		return "http://127.0.0.1:" + s, nil
	}
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		path = strings.TrimPrefix(strings.TrimSpace(path), "//")
		// Cleaned and trimmed until neither changes it, the path neither
		// starts with "//" (which the next parse would take for the
		// "unix://" form) nor changes when parsed again: the canonical
		// form parses back to itself. Each round shortens it (or makes
		// "" into "."), so the loop ends.
		for {
			c := strings.TrimSpace(filepath.Clean(path))
			if c == path {
				break
			}
			path = c
		}
		if path == "" || path == "/" || path == "." {
			return "", fmt.Errorf("%q: unix: needs a socket path, e.g. unix:/run/app.sock", s)
		}
		return "unix:" + path, nil
	}
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		scheme = strings.ToLower(scheme)
		if stream {
			if scheme != "tcp" {
				return "", fmt.Errorf("%q: a %s upstream is host:port, a port, tcp://host:port or unix:PATH", s, kind)
			}
			if err := checkHostPort(s, rest); err != nil {
				return "", err
			}
			return "tcp://" + rest, nil
		}
		switch scheme {
		case "http", "https", "h2c":
		default:
			return "", fmt.Errorf("%q: unsupported upstream scheme %q (want http, https, h2c or unix:)", s, scheme)
		}
		u, err := url.Parse(s)
		if err != nil {
			return "", fmt.Errorf("%q: %v", s, err)
		}
		if u.Host == "" {
			return "", fmt.Errorf("%q: missing host", s)
		}
		if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
			return "", fmt.Errorf("%q: an upstream URL takes no path or query; requests keep their own path (change it with a url-rewrite policy action)", s)
		}
		if p := u.Port(); p != "" {
			if _, err := parsePort(p); err != nil {
				return "", fmt.Errorf("%q: %v", s, err)
			}
		}
		return scheme + "://" + rest, nil
	}
	if err := checkHostPort(s, s); err != nil {
		return "", err
	}
	if stream {
		return "tcp://" + s, nil
	}
	return "http://" + s, nil
}

func checkHostPort(orig, hp string) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("%q: want a port, host:port or a URL", orig)
	}
	if host == "" {
		return fmt.Errorf("%q: missing host", orig)
	}
	if _, err := parsePort(port); err != nil {
		return fmt.Errorf("%q: %v", orig, err)
	}
	// The URL parser is the judge of what a host may contain: the
	// canonical form we return is a URL.
	if u, err := url.Parse("tcp://" + hp); err != nil || u.Hostname() != host || u.Port() != port || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q: invalid host %q", orig, host)
	}
	return nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q out of range 1-65535", s)
	}
	return n, nil
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// ParseLevel parses a log level name: debug, info, warn (warning), error.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown level %q (want debug, info, warn or error)", s)
}
