package config

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Config is the whole config file of `sluice serve`. See docs/config.md.
type Config struct {
	// Admin is the address of the admin listener (/healthz, /readyz,
	// /metrics); empty disables it.
	Admin string `yaml:"admin"`
	// GeoIP lists .mmdb files. Not available in this build yet: a non-empty
	// list is an error.
	GeoIP StringList `yaml:"geoip"`
	// TrustedProxies are the CIDR ranges (or single IPs) whose
	// X-Forwarded-For / Forwarded headers are believed.
	TrustedProxies StringList `yaml:"trusted_proxies"`
	// TunnelServer accepts tunnel agents. Not available in this build yet.
	TunnelServer *yaml.Node `yaml:"tunnel_server"`
	Log          Log        `yaml:"log"`
	Limits       Limits     `yaml:"limits"`
	Endpoints    []Endpoint `yaml:"endpoints"`

	// File is the config file's path as given to Load.
	File string `yaml:"-"`
	// Trusted is TrustedProxies parsed.
	Trusted []netip.Prefix `yaml:"-"`
	// Source is the file's text, for inline policies' error positions.
	Source []byte `yaml:"-"`
}

// Log configures process and access logs.
type Log struct {
	Format string `yaml:"format"` // text (default) or json
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	// AccessLog: "" or "off" = none, "stdout", "stderr", true (= stdout), or
	// a file path (appended to). Access logs are always JSON lines.
	AccessLog string `yaml:"access_log"`
}

// Limits bound what clients and upstreams may do. A zero field means the
// proxy's default; per-endpoint limits override the top-level ones field by
// field.
type Limits struct {
	ReadHeaderTimeout     Duration `yaml:"read_header_timeout"`
	IdleTimeout           Duration `yaml:"idle_timeout"`
	BodyReadTimeout       Duration `yaml:"body_read_timeout"`
	DialTimeout           Duration `yaml:"dial_timeout"`
	ResponseHeaderTimeout Duration `yaml:"response_header_timeout"`
	ShutdownTimeout       Duration `yaml:"shutdown_timeout"`
	MaxHeaderBytes        ByteSize `yaml:"max_header_bytes"`
	MaxBodyBytes          ByteSize `yaml:"max_body_bytes"`
	UpstreamStallTimeout  Duration `yaml:"upstream_stall_timeout"`
	UpstreamIdleTimeout   Duration `yaml:"upstream_idle_timeout"`
	UpstreamIdleConns     Count    `yaml:"upstream_idle_conns"`
}

// Endpoint is one `endpoints:` entry.
type Endpoint struct {
	// URL is what the endpoint answers for: scheme, host (empty = any) and
	// port (default: the scheme's). http, https, tcp and tls schemes.
	URL string `yaml:"url"`
	// Listen overrides the listen address derived from URL (":PORT").
	Listen             string        `yaml:"listen"`
	TLS                TLSList       `yaml:"tls"`
	Upstream           StringList    `yaml:"upstream"`
	LoadBalancing      LoadBalancing `yaml:"load_balancing"`
	TrafficPolicyFile  string        `yaml:"traffic_policy_file"`
	TrafficPolicy      *yaml.Node    `yaml:"traffic_policy"`
	InsecureSkipVerify bool          `yaml:"insecure_skip_verify"`
	Limits             Limits        `yaml:"limits"`

	// Path is "endpoints[i]", for messages.
	Path string `yaml:"-"`
	// Scheme is the URL's scheme, lower-cased.
	Scheme string `yaml:"-"`
	// PolicyName names an inline policy in messages: "file:line".
	PolicyName string `yaml:"-"`
	// Line and Col locate the entry in the file, for errors found later
	// (when the proxy applies it).
	Line, Col int `yaml:"-"`
}

// LoadBalancing spreads requests over several upstreams.
type LoadBalancing struct {
	// Policy: round_robin (default), least_requests or p2c (power of two
	// random choices by in-flight requests).
	Policy      string       `yaml:"policy"`
	HealthCheck *HealthCheck `yaml:"health_check"`
	Passive     Passive      `yaml:"passive"`
}

// HealthCheck is an active check of every upstream every Interval: an HTTP
// GET of Path (2xx/3xx within Timeout passes), or a TCP connect when Path is
// empty (always for tcp/tls endpoints).
type HealthCheck struct {
	Path      string   `yaml:"path"`
	Interval  Duration `yaml:"interval"`
	Timeout   Duration `yaml:"timeout"`
	Healthy   Count    `yaml:"healthy"`   // passes before an upstream is back in
	Unhealthy Count    `yaml:"unhealthy"` // fails before it is taken out
}

// Passive health: an upstream that fails MaxFails times within FailWindow
// is ejected for EjectDuration (nginx's max_fails/fail_timeout).
type Passive struct {
	MaxFails      Count    `yaml:"max_fails"`
	FailWindow    Duration `yaml:"fail_window"`
	EjectDuration Duration `yaml:"eject_duration"`
	Disabled      bool     `yaml:"disabled"`
}

// Balance policies accepted in load_balancing.policy.
var Balances = []string{"round_robin", "least_requests", "p2c"}

// Load reads and validates a config file. Relative file paths inside it
// (certificates, policy files, access log) are resolved against the config
// file's directory. Errors are *PosError values joined with errors.Join.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse is Load on bytes already read; env looks up ${VARS} (nil: every
// variable is unset).
func Parse(file string, data []byte, env func(string) (string, bool)) (*Config, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if err.Error() == "EOF" {
			return nil, &PosError{File: file, Line: 1, Col: 1, Msg: "config file is empty"}
		}
		return nil, yamlError(file, err)
	}
	d := &decoder{file: file, env: env, nodes: map[string]*yaml.Node{}}
	c := &Config{File: file, Source: data}
	top := &root
	if top.Kind == yaml.DocumentNode && len(top.Content) == 1 {
		top = top.Content[0]
	}
	d.decode(top, reflect.ValueOf(c).Elem(), "")
	if err := d.err(); err != nil {
		return nil, err
	}
	c.validate(d)
	if err := d.err(); err != nil {
		return nil, err
	}
	c.resolvePaths(filepath.Dir(file))
	return c, nil
}

func (c *Config) validate(d *decoder) {
	at := func(path string) *yaml.Node { return d.nodes[path] }
	if c.Admin != "" {
		if err := checkListen(c.Admin); err != nil {
			d.errorf(at("admin"), "admin: %v", err)
		}
	}
	if len(c.GeoIP) > 0 {
		d.errorf(at("geoip"), "geoip: GeoIP databases are not available in this build yet")
	}
	if c.TunnelServer != nil && !isNull(c.TunnelServer) {
		d.errorf(c.TunnelServer, "tunnel_server: tunnels are not available in this build yet")
	}
	for i, s := range c.TrustedProxies {
		p, err := ParsePrefix(s)
		if err != nil {
			d.errorf(at(fmt.Sprintf("trusted_proxies[%d]", i)), "trusted_proxies: %v", err)
			continue
		}
		c.Trusted = append(c.Trusted, p)
	}
	if c.Log.Format != "" && c.Log.Format != "text" && c.Log.Format != "json" {
		d.errorf(at("log.format"), "log.format: want text or json, got %q", c.Log.Format)
	}
	if c.Log.Level != "" {
		if _, err := ParseLevel(c.Log.Level); err != nil {
			d.errorf(at("log.level"), "log.level: %v", err)
		}
	}
	switch strings.ToLower(c.Log.AccessLog) {
	case "true", "on", "yes":
		c.Log.AccessLog = "stdout"
	case "false", "off", "no":
		c.Log.AccessLog = ""
	}
	if len(c.Endpoints) == 0 {
		d.errorf(at("endpoints"), "endpoints: at least one endpoint is needed")
	}
	for i := range c.Endpoints {
		e := &c.Endpoints[i]
		e.Path = fmt.Sprintf("endpoints[%d]", i)
		e.validate(d)
	}
}

func (e *Endpoint) validate(d *decoder) {
	p := e.Path
	if n := d.nodes[p]; n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	at := func(key string) *yaml.Node {
		if n := d.nodes[join(p, key)]; n != nil {
			return n
		}
		return d.nodes[p]
	}
	if e.URL == "" {
		d.errorf(at(""), "%s.url: missing (e.g. url: http://:8080)", p)
	} else if scheme, err := checkEndpointURL(e.URL); err != nil {
		d.errorf(at("url"), "%s.url: %v", p, err)
	} else {
		e.Scheme = scheme
	}
	if e.Listen != "" {
		if err := checkListen(e.Listen); err != nil {
			d.errorf(at("listen"), "%s.listen: %v", p, err)
		}
	}
	if len(e.Upstream) == 0 {
		d.errorf(at(""), "%s.upstream: missing (a URL, host:port, port, or a list of them)", p)
	}
	kind := e.Scheme
	if kind == "" {
		kind = "http"
	}
	for i, u := range e.Upstream {
		norm, err := ParseUpstream(kind, u)
		if err != nil {
			n := d.nodes[fmt.Sprintf("%s.upstream[%d]", p, i)]
			if n == nil {
				n = at("upstream")
			}
			d.errorf(n, "%s.upstream: %v", p, err)
			continue
		}
		e.Upstream[i] = norm
	}
	switch e.Scheme {
	case "https":
		// Internal endpoints have no listener, so nothing to terminate.
		if len(e.TLS) == 0 && !isInternal(e.URL) {
			d.errorf(at("url"), "%s: an https endpoint needs tls: {cert: FILE, key: FILE}", p)
		}
	case "http", "tcp", "tls":
		if len(e.TLS) > 0 {
			d.errorf(at("tls"), "%s.tls: only https endpoints terminate TLS (%s endpoints do not)", p, e.Scheme)
		}
	}
	for i, t := range e.TLS {
		if t.Cert == "" || t.Key == "" {
			d.errorf(at("tls"), "%s.tls[%d]: both cert and key are needed", p, i)
		}
	}
	if e.TrafficPolicyFile != "" && e.TrafficPolicy != nil {
		d.errorf(at("traffic_policy"), "%s: use traffic_policy_file or traffic_policy, not both", p)
	}
	if e.TrafficPolicy != nil {
		e.PolicyName = fmt.Sprintf("%s:%d", d.file, e.TrafficPolicy.Line)
	}
	if b := e.LoadBalancing.Policy; b != "" && !contains(Balances, b) {
		d.errorf(at("load_balancing.policy"), "%s.load_balancing.policy: unknown policy %q (want %s)", p, b, strings.Join(Balances, ", "))
	}
	if hc := e.LoadBalancing.HealthCheck; hc != nil {
		if hc.Path != "" && !strings.HasPrefix(hc.Path, "/") {
			d.errorf(at("load_balancing.health_check.path"), "%s.load_balancing.health_check.path: must start with /", p)
		}
	}
}

// isInternal reports whether an endpoint URL's host is *.internal.
func isInternal(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	h := strings.ToLower(u.Hostname())
	return h == "internal" || strings.HasSuffix(h, ".internal")
}

// checkListen checks a HOST:PORT listen address (host may be empty; port
// 0 picks a free port).
func checkListen(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: want HOST:PORT, e.g. 127.0.0.1:8080 or :8080", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q out of range 0-65535", s, port)
	}
	return nil
}

// checkEndpointURL checks an endpoint URL and returns its scheme.
func checkEndpointURL(s string) (string, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return "", fmt.Errorf("%q: want scheme://host:port, e.g. http://:8080 or https://app.example.com", s)
	}
	scheme = strings.ToLower(scheme)
	switch scheme {
	case "http", "https", "tcp", "tls":
	default:
		return "", fmt.Errorf("%q: unsupported scheme %q (want http, https, tcp or tls)", s, scheme)
	}
	if strings.ContainsAny(strings.TrimSuffix(rest, "/"), "/?#") {
		return "", fmt.Errorf("%q: an endpoint URL has no path or query", s)
	}
	return scheme, nil
}

// resolvePaths makes file paths relative to the config file's directory.
func (c *Config) resolvePaths(dir string) {
	res := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	switch c.Log.AccessLog {
	case "", "stdout", "stderr":
	default:
		c.Log.AccessLog = res(c.Log.AccessLog)
	}
	for i := range c.Endpoints {
		e := &c.Endpoints[i]
		e.TrafficPolicyFile = res(e.TrafficPolicyFile)
		for j := range e.TLS {
			e.TLS[j].Cert = res(e.TLS[j].Cert)
			e.TLS[j].Key = res(e.TLS[j].Key)
		}
	}
}

// pick is b when it is set (non-zero), else a.
func pick[T comparable](a, b T) T {
	var zero T
	if b != zero {
		return b
	}
	return a
}

// Merge returns l with the non-zero fields of o on top.
func (l Limits) Merge(o Limits) Limits {
	return Limits{
		ReadHeaderTimeout:     pick(l.ReadHeaderTimeout, o.ReadHeaderTimeout),
		IdleTimeout:           pick(l.IdleTimeout, o.IdleTimeout),
		BodyReadTimeout:       pick(l.BodyReadTimeout, o.BodyReadTimeout),
		DialTimeout:           pick(l.DialTimeout, o.DialTimeout),
		ResponseHeaderTimeout: pick(l.ResponseHeaderTimeout, o.ResponseHeaderTimeout),
		ShutdownTimeout:       pick(l.ShutdownTimeout, o.ShutdownTimeout),
		MaxHeaderBytes:        pick(l.MaxHeaderBytes, o.MaxHeaderBytes),
		MaxBodyBytes:          pick(l.MaxBodyBytes, o.MaxBodyBytes),
		UpstreamStallTimeout:  pick(l.UpstreamStallTimeout, o.UpstreamStallTimeout),
		UpstreamIdleTimeout:   pick(l.UpstreamIdleTimeout, o.UpstreamIdleTimeout),
		UpstreamIdleConns:     pick(l.UpstreamIdleConns, o.UpstreamIdleConns),
	}
}

// ParsePrefix parses a CIDR range or a single IP (taken as /32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR range such as 10.0.0.0/8", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR range", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// yamlError turns a yaml.v3 syntax error ("yaml: line 3: ...") into a
// PosError. yaml.v3 reports no column for syntax errors; we give column 1.
func yamlError(file string, err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 1
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		var n int
		if _, scanErr := fmt.Sscanf(rest, "%d:", &n); scanErr == nil {
			line = n
			_, msg, _ = strings.Cut(rest, ": ")
		}
	}
	return &PosError{File: file, Line: line, Col: 1, Msg: "YAML syntax: " + msg}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func reflectValue(p any) reflect.Value { return reflect.ValueOf(p).Elem() }
