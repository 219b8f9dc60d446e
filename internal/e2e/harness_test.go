package e2e

// The harness: an echo upstream, a proxy whose endpoints run policy
// handles loaded from YAML files, and a client that reaches every endpoint
// URL through the proxy's loopback listener whatever host the URL names.

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/sluicehq/sluice/internal/reload"
	"github.com/sluicehq/sluice/internal/testcert"
	"github.com/sluicehq/sluice/policy"
	_ "github.com/sluicehq/sluice/policy/actions" // the built-in actions register themselves
	"github.com/sluicehq/sluice/proxy"
	"github.com/sluicehq/sluice/proxy/certs"
	"github.com/sluicehq/sluice/proxy/upstream"
	"golang.org/x/net/http2"
)

// sharedListen is the listen key every endpoint uses unless it names its
// own: one loopback port, endpoints chosen by Host/SNI as in production.
const sharedListen = "127.0.0.1:0"

// seen is what the echo upstream received, sent back as the JSON body.
type seen struct {
	Method     string      `json:"method"`
	Path       string      `json:"path"` // escaped, as on the wire
	RawQuery   string      `json:"raw_query"`
	Host       string      `json:"host"`
	Header     http.Header `json:"headers"`
	Body       string      `json:"body"`
	RemoteAddr string      `json:"remote_addr"`
}

// URI is the request target the upstream got.
func (s *seen) URI() string {
	if s.RawQuery == "" {
		return s.Path
	}
	return s.Path + "?" + s.RawQuery
}

// backend is the real upstream. By default it answers 200 with the JSON
// of what it received; respond replaces that answer.
type backend struct {
	*httptest.Server
	hits    atomic.Int64
	last    atomic.Pointer[seen]
	respond func(w http.ResponseWriter, r *http.Request, s *seen)
}

func newBackend(t testing.TB, respond func(w http.ResponseWriter, r *http.Request, s *seen)) *backend {
	t.Helper()
	b := &backend{respond: respond}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s := &seen{Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Host: r.Host,
			Header: r.Header.Clone(), Body: string(body), RemoteAddr: r.RemoteAddr}
		b.last.Store(s)
		b.hits.Add(1)
		if b.respond != nil {
			b.respond(w, r, s)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", "echo")
		json.NewEncoder(w).Encode(s)
	}))
	t.Cleanup(b.Close)
	return b
}

// ep is one endpoint of a test proxy.
type ep struct {
	URL    string // http://app.test, https://app.test, tcp://..., https://x.internal
	Policy string // YAML policy; "" = no policy
	// PolicyFile loads an existing file (e.g. behind a symlink) instead
	// of writing Policy to one.
	PolicyFile string
	Upstream   string // "" = the env's echo backend; "none" = no upstream
	Listen     string // "" = sharedListen (internal endpoints: none)
}

// setup are the env-wide knobs.
type setup struct {
	// Trusted makes the proxy believe X-Forwarded-For from loopback peers,
	// so a test can present any client IP to the HTTP phases.
	Trusted bool
	// Watch reloads policy files when they change.
	Watch bool
	// Respond replaces the echo backend's answer.
	Respond func(w http.ResponseWriter, r *http.Request, s *seen)
}

// env is one running proxy with its upstream, policies and logs.
type env struct {
	t        testing.TB
	srv      *proxy.Server
	back     *backend
	logs     *logBuffer
	roots    *x509.CertPool
	dir      string
	files    map[string]string // endpoint URL → its policy file
	handles  map[string]*policy.Handle
	hostBind map[string]string // lower-case host → listen key
	watcher  *reload.Watcher
}

func start(t testing.TB, eps ...ep) *env { return startWith(t, setup{}, eps...) }

// startWith starts the upstream, writes each endpoint's policy to a file,
// loads it as a file handle (watched when s.Watch) and applies the
// endpoints on a new proxy. A policy that fails to load fails the test;
// use loadPolicy to check load errors.
func startWith(t testing.TB, s setup, eps ...ep) *env {
	t.Helper()
	e := &env{t: t, logs: &logBuffer{}, roots: x509.NewCertPool(), dir: t.TempDir(),
		files: map[string]string{}, handles: map[string]*policy.Handle{}, hostBind: map[string]string{}}
	e.back = newBackend(t, s.Respond)
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if s.Watch {
		w, err := reload.NewWatcher(log)
		if err != nil {
			t.Fatal(err)
		}
		w.Debounce = 10 * time.Millisecond
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); w.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		e.watcher = w
	}
	opts := proxy.Options{Log: log}
	if s.Trusted {
		opts.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	var cfgs []proxy.EndpointConfig
	for i, p := range eps {
		u, err := url.Parse(p.URL)
		if err != nil {
			t.Fatalf("endpoint %q: %v", p.URL, err)
		}
		host := strings.ToLower(u.Hostname())
		internal := strings.HasSuffix(host, ".internal")
		c := proxy.EndpointConfig{URL: p.URL, Listen: p.Listen}
		if c.Listen == "" && !internal {
			c.Listen = sharedListen
		}
		if !internal {
			e.hostBind[host] = c.Listen
		}
		switch p.Upstream {
		case "":
			c.Upstream = upstream.Config{URLs: []string{e.back.URL}}
		case "none":
		default:
			c.Upstream = upstream.Config{URLs: []string{p.Upstream}}
		}
		if u.Scheme == "https" && !internal {
			cert, key := testcert.Generate(t, e.dir, host)
			e.roots.AddCert(leaf(t, cert))
			c.TLS = []certs.Pair{{Cert: cert, Key: key}}
		}
		if p.Policy != "" || p.PolicyFile != "" {
			path := p.PolicyFile
			if path == "" {
				path = filepath.Join(e.dir, "policy-"+strconv.Itoa(i)+".yaml")
				writeFile(t, path, p.Policy)
			}
			h, err := policy.NewFileHandle(path, policy.Options{Log: log, Watcher: e.watcher})
			if err != nil {
				t.Fatalf("policy of %s: %v", p.URL, err)
			}
			t.Cleanup(h.Close)
			e.files[p.URL] = path
			e.handles[p.URL] = h
			c.Hooks = h
		}
		cfgs = append(cfgs, c)
	}
	e.srv = proxy.New(opts)
	if err := e.srv.Apply(cfgs); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.srv.Shutdown(ctx)
	})
	e.dumpLogs()
	return e
}

// loadPolicy loads src as a policy file the way the binary does and
// returns the load error (nil when it loaded).
func loadPolicy(t testing.TB, name, src string) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	writeFile(t, path, src)
	h, err := policy.NewFileHandle(path, policy.Options{Log: slog.New(slog.DiscardHandler)})
	if h != nil {
		h.Close()
	}
	return err
}

// addr is the real address of a listen key ("" = the shared one).
func (e *env) addr(key string) string {
	e.t.Helper()
	if key == "" {
		key = sharedListen
	}
	a := e.srv.Addrs()[key]
	if a == nil {
		e.t.Fatalf("no listener %q in %v", key, e.srv.Addrs())
	}
	return a.String()
}

// addrFor is the listener serving host (any host not configured goes to
// the shared listener, where a catch-all endpoint may answer).
func (e *env) addrFor(host string) string {
	return e.addr(e.hostBind[strings.ToLower(host)])
}

// client returns an HTTP/1.1 keep-alive client that sends every URL to the
// proxy, trusts the test certificates, never follows redirects and never
// asks for compression on its own.
func (e *env) client() *http.Client { return e.clientFrom("") }

// clientFrom is client with connections made from a chosen local loopback
// IP (e.g. "127.0.0.9"), so that conn.client_ip differs per test.
func (e *env) clientFrom(localIP string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, hostport string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(hostport)
			return d.DialContext(ctx, "tcp", e.addrFor(host))
		},
		TLSClientConfig:     &tls.Config{RootCAs: e.roots, NextProtos: []string{"http/1.1"}},
		DisableCompression:  true,
		MaxIdleConnsPerHost: 4,
	}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// reply is one answer as the client received it.
type reply struct {
	Proto  string // "HTTP/1.1", "HTTP/2.0"
	Status int
	Header http.Header
	Body   string // decoded when the response had a Content-Encoding
	Raw    []byte // as received
	Err    error  // transport error (e.g. the connection was closed)
	// DecodeErr is set when the body had a Content-Encoding that did not
	// decode; Body is then the raw body.
	DecodeErr error
}

// seen decodes the echo upstream's JSON body.
func (r reply) seen(t testing.TB) *seen {
	t.Helper()
	var s seen
	if err := json.Unmarshal([]byte(r.Body), &s); err != nil || s.Method == "" {
		t.Fatalf("response is not the upstream's echo (status %d): %q", r.Status, r.Body)
	}
	return &s
}

// request is what a test sends.
type request struct {
	Method string
	URL    string
	Header []string // name, value pairs; "Host" sets the Host header
	Body   string
}

// send does one request with c and reads the whole answer.
func send(t testing.TB, c *http.Client, q request) reply {
	t.Helper()
	method := q.Method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if q.Body != "" {
		body = strings.NewReader(q.Body)
	}
	req, err := http.NewRequest(method, q.URL, body)
	if err != nil {
		t.Fatalf("request %s %s: %v", method, q.URL, err)
	}
	for i := 0; i+1 < len(q.Header); i += 2 {
		if strings.EqualFold(q.Header[i], "Host") {
			req.Host = q.Header[i+1]
			continue
		}
		req.Header.Add(q.Header[i], q.Header[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		return reply{Err: err}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return reply{Status: res.StatusCode, Header: res.Header, Err: err}
	}
	r := reply{Proto: res.Proto, Status: res.StatusCode, Header: res.Header, Raw: raw, Body: string(raw)}
	if ce := res.Header.Get("Content-Encoding"); ce != "" {
		// A body that does not decode stays as received (an upstream's
		// own encoding passed through untouched); DecodeErr says so.
		if dec, err := decode(ce, raw); err == nil {
			r.Body = string(dec)
		} else {
			r.DecodeErr = err
		}
	}
	return r
}

// get is send for a GET with header pairs.
func get(t testing.TB, c *http.Client, url string, hdr ...string) reply {
	t.Helper()
	return send(t, c, request{URL: url, Header: hdr})
}

// decode undoes one Content-Encoding.
func decode(coding string, b []byte) ([]byte, error) {
	var r io.Reader
	switch strings.ToLower(strings.TrimSpace(coding)) {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		r = zr
	case "deflate":
		r = flate.NewReader(bytes.NewReader(b))
	case "br":
		r = brotli.NewReader(bytes.NewReader(b))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	default:
		return nil, errors.New("unknown content-encoding " + coding)
	}
	return io.ReadAll(r)
}

// rawExchange writes data on a new TCP connection to addr and returns what
// the server sent until it closed the connection (or 3 s passed).
func rawExchange(t testing.TB, addr, data string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if data != "" {
		if _, err := io.WriteString(c, data); err != nil {
			return "", err
		}
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// logBuffer collects log lines from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func leaf(t testing.TB, certFile string) *x509.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(certFile, strings.TrimSuffix(certFile, ".crt")+".key")
	if err != nil {
		t.Fatal(err)
	}
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// dumpLogs prints the env's logs when the test failed.
func (e *env) dumpLogs() {
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("logs:\n%s", e.logs.String())
		}
	})
}

// clientH2 returns an HTTP/2 client: over TLS (ALPN h2) for https URLs,
// and h2c with prior knowledge for http URLs.
func (e *env) clientH2() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	dial := func(ctx context.Context, hostport string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(hostport)
		return d.DialContext(ctx, "tcp", e.addrFor(host))
	}
	h2 := &http2.Transport{
		DisableCompression: true,
		TLSClientConfig:    &tls.Config{RootCAs: e.roots},
		DialTLSContext: func(ctx context.Context, _, hostport string, cfg *tls.Config) (net.Conn, error) {
			c, err := dial(ctx, hostport)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(c, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, err
			}
			return tc, nil
		},
	}
	h2c := &http2.Transport{
		AllowHTTP:          true,
		DisableCompression: true,
		DialTLSContext: func(ctx context.Context, _, hostport string, _ *tls.Config) (net.Conn, error) {
			return dial(ctx, hostport)
		},
	}
	e.t.Cleanup(h2.CloseIdleConnections)
	e.t.Cleanup(h2c.CloseIdleConnections)
	return &http.Client{
		Transport:     schemeRouter{"https": h2, "http": h2c},
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// schemeRouter sends each request to the transport for its URL scheme.
type schemeRouter map[string]http.RoundTripper

func (m schemeRouter) RoundTrip(r *http.Request) (*http.Response, error) {
	if t := m[r.URL.Scheme]; t != nil {
		return t.RoundTrip(r)
	}
	return nil, errors.New("no transport for scheme " + r.URL.Scheme)
}

// nonce is a short string unique to this call, for names that must not
// collide across tests or -count runs (rate-limit tables are per process).
func nonce() string {
	return strconv.FormatInt(time.Now().UnixNano(), 36) + strconv.FormatInt(nonceN.Add(1), 36)
}

var nonceN atomic.Int64
