package e2e

// The harness: an echo upstream, a proxy whose endpoints run policy
// handles loaded from YAML files, and a client that reaches every endpoint
// URL through the proxy's loopback listener whatever host the URL names.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/reload"
	"github.com/sluicehq/sluice/internal/reload/reloadtest"
	"github.com/sluicehq/sluice/internal/testcert"
	"github.com/sluicehq/sluice/internal/testlog"
	"github.com/sluicehq/sluice/policy"
	_ "github.com/sluicehq/sluice/policy/actions" // the built-in actions register themselves
	"github.com/sluicehq/sluice/proxy"
	"github.com/sluicehq/sluice/proxy/certs"
	"github.com/sluicehq/sluice/proxy/upstream"
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
	logs     *testlog.Buffer
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
	e := &env{t: t, logs: &testlog.Buffer{}, roots: x509.NewCertPool(), dir: t.TempDir(),
		files: map[string]string{}, handles: map[string]*policy.Handle{}, hostBind: map[string]string{}}
	e.back = newBackend(t, s.Respond)
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if s.Watch {
		e.watcher = reloadtest.Start(t, log, 10*time.Millisecond)
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
	a, err := e.lookup(key)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *env) lookup(key string) (string, error) {
	if key == "" {
		key = sharedListen
	}
	a := e.srv.Addrs()[key]
	if a == nil {
		return "", fmt.Errorf("no listener %q in %v", key, e.srv.Addrs())
	}
	return a.String(), nil
}

// addrFor is the listener serving host (any host not configured goes to
// the shared listener, where a catch-all endpoint may answer). It runs in
// the transports' dialing goroutines, so it returns an error instead of
// failing the test.
func (e *env) addrFor(host string) (string, error) {
	return e.lookup(e.hostBind[strings.ToLower(host)])
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

// nonce is a short string unique to this call, for names that must not
// collide across tests or -count runs (rate-limit tables are per process).
func nonce() string {
	return strconv.FormatInt(time.Now().UnixNano(), 36) + strconv.FormatInt(nonceN.Add(1), 36)
}

var nonceN atomic.Int64
