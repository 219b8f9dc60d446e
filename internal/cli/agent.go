package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	neturl "net/url"
	"path/filepath"
	"strings"

	"github.com/sluicehq/sluice/internal/config"
)

// errTunnels and errGeoIP name features the CLI accepts (they are part of
// the user contract) but this build cannot run yet.
var (
	errTunnels = errors.New("tunnels are not available in this build yet (--server, --authtoken, --pooling-enabled)")
	errGeoIP   = errors.New("GeoIP databases are not available in this build yet (--geoip-db)")
)

// agentFlags are the flags of `sluice http|tcp|tls`.
type agentFlags struct {
	kind               string // http, tcp or tls
	listen             string
	url                string
	policyFile         string
	server, authtoken  string
	pooling            bool
	geoip              listFlag
	trusted            listFlag
	admin              string
	logFormat          string
	logLevel           string
	accessLog          bool
	tlsCert, tlsKey    string
	insecureSkipVerify bool
	limits             config.Limits
}

// DefaultListen is where `sluice http|tcp|tls` listens without --listen.
const DefaultListen = "127.0.0.1:8000"

func newAgentFlagSet(kind string, f *agentFlags, out io.Writer) *flag.FlagSet {
	f.kind = kind
	fs := flag.NewFlagSet("sluice "+kind, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&f.listen, "listen", DefaultListen, "serve locally on `ADDR` (port 0 = any free port, logged at start)")
	fs.StringVar(&f.url, "url", "", "the endpoint's public `URL`, e.g. https://app.example.com (default: any host)")
	fs.StringVar(&f.policyFile, "traffic-policy-file", "", "Traffic Policy `FILE` to run; reloaded when it changes")
	fs.StringVar(&f.server, "server", "", "connect out to a sluice edge at `HOST:PORT` instead of listening (not available yet)")
	fs.StringVar(&f.authtoken, "authtoken", "", "`TOKEN` for --server (not available yet)")
	fs.BoolVar(&f.pooling, "pooling-enabled", false, "share --url with other agents (not available yet)")
	fs.Var(&f.geoip, "geoip-db", "MaxMind/DB-IP .mmdb `FILE` (repeatable; not available yet)")
	fs.Var(&f.trusted, "trusted-proxies", "`CIDR,...` whose X-Forwarded-For/Forwarded headers are believed")
	fs.StringVar(&f.admin, "admin", "", "admin listener `ADDR` for /healthz, /readyz, /metrics")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&f.accessLog, "access-log", false, "write one JSON access log line per request to stdout")
	fs.BoolVar(&f.insecureSkipVerify, "insecure-skip-verify", false, "do not verify an https upstream's certificate")
	if kind == "http" {
		fs.StringVar(&f.tlsCert, "tls-cert", "", "certificate `FILE` (PEM) for an https --url")
		fs.StringVar(&f.tlsKey, "tls-key", "", "private key `FILE` (PEM) for an https --url")
	}
	limitFlags(fs, &f.limits)
	return fs
}

// toConfig turns the flags and the <upstream> argument into the same Config
// a file would give, so both modes run through one code path.
func (f *agentFlags) toConfig(upstreamArg string) (*config.Config, error) {
	if f.server != "" || f.authtoken != "" || f.pooling {
		return nil, errTunnels
	}
	if len(f.geoip) > 0 {
		return nil, errGeoIP
	}
	up, err := config.ParseUpstream(f.kind, upstreamArg)
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	_, port, err := net.SplitHostPort(f.listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: want HOST:PORT, e.g. 127.0.0.1:8000", f.listen)
	}
	ep := config.Endpoint{
		Listen:             f.listen,
		Upstream:           config.StringList{up},
		TrafficPolicyFile:  abs(f.policyFile),
		InsecureSkipVerify: f.insecureSkipVerify,
		Path:               "endpoint",
		Scheme:             f.kind,
	}
	if f.url == "" {
		ep.URL = f.kind + "://:" + port
		if port == "0" {
			// The proxy wants a real port in endpoint URLs; with an OS-chosen
			// port the URL takes the scheme's default (tcp has none: 8000),
			// which only shows in endpoint.url/id, never in the bind.
			ep.URL = f.kind + "://"
			if f.kind == "tcp" {
				ep.URL = "tcp://:8000"
			}
		}
	} else {
		ep.URL, ep.Scheme, err = agentURL(f.kind, f.url)
		if err != nil {
			return nil, err
		}
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if f.tlsCert != "" {
		if ep.Scheme != "https" {
			return nil, errors.New("--tls-cert/--tls-key need an https --url, e.g. --url https://app.example.com")
		}
		ep.TLS = config.TLSList{{Cert: abs(f.tlsCert), Key: abs(f.tlsKey)}}
	} else if ep.Scheme == "https" {
		return nil, errors.New("an https --url needs --tls-cert and --tls-key (TLS is terminated here)")
	}
	c := &config.Config{
		Admin:     f.admin,
		Log:       config.Log{Format: f.logFormat, Level: f.logLevel},
		Limits:    f.limits,
		Endpoints: []config.Endpoint{ep},
	}
	if f.logFormat != "text" && f.logFormat != "json" {
		return nil, fmt.Errorf("--log-format %q: want text or json", f.logFormat)
	}
	if _, err := config.ParseLevel(f.logLevel); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	if f.accessLog {
		c.Log.AccessLog = "stdout"
	}
	for _, s := range f.trusted {
		p, err := config.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxies: %w", err)
		}
		c.TrustedProxies = append(c.TrustedProxies, s)
		c.Trusted = append(c.Trusted, p)
	}
	return c, nil
}

// agentURL checks --url against the command: `sluice http` takes http://
// and https:// URLs (a bare host means http), tcp takes tcp://, tls tls://.
func agentURL(kind, s string) (url, scheme string, err error) {
	if !strings.Contains(s, "://") {
		s = kind + "://" + s
	}
	scheme, _, _ = strings.Cut(s, "://")
	scheme = strings.ToLower(scheme)
	ok := scheme == kind || (kind == "http" && scheme == "https")
	if !ok {
		return "", "", fmt.Errorf("--url %q: `sluice %s` serves %s:// URLs", s, kind, kind)
	}
	if strings.ContainsAny(strings.TrimSuffix(s[len(scheme)+3:], "/"), "/?#") {
		return "", "", fmt.Errorf("--url %q: an endpoint URL has no path or query", s)
	}
	if u, err := neturl.Parse(s); err != nil {
		return "", "", fmt.Errorf("--url %q: %v", s, err)
	} else if h := strings.ToLower(u.Hostname()); h == "internal" || strings.HasSuffix(h, ".internal") {
		// Internal endpoints have no listener; alone they serve nothing.
		return "", "", fmt.Errorf("--url %q: an internal endpoint is reached only through forward-internal from another endpoint; use a config file (sluice serve)", s)
	}
	return s, scheme, nil
}

func abs(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
