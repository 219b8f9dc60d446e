package actions

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/internal/goldenfile"
	"github.com/sluicehq/sluice/policy"
	"go.yaml.in/yaml/v3"
)

// golden is an expectation file beside a policy (see internal/goldenfile).
type golden = goldenfile.File

type fakeGeo struct{ city, country string }

func (g fakeGeo) Lookup(netip.Addr) policy.GeoInfo {
	return policy.GeoInfo{City: g.city, Country: g.country}
}

// outcome is what one request through a policy produced.
type outcome struct {
	closed   bool
	upstream *exchange.Request // what the upstream received; nil: not contacted
	x        *exchange.Exchange
}

func TestNgrokDocExamples(t *testing.T) { runGoldenDir(t, "testdata/ngrok") }

// TestExamplePolicies checks the behaviour of examples/policies through the
// expectations in testdata/examples.
func TestExamplePolicies(t *testing.T) { runGoldenDir(t, "testdata/examples") }

func runGoldenDir(t *testing.T, dir string) {
	files, err := filepath.Glob(filepath.Join(dir, "*.expect.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, exp := range files {
		name := strings.TrimSuffix(filepath.Base(exp), ".expect.yaml")
		t.Run(name, func(t *testing.T) {
			var g golden
			raw, err := os.ReadFile(exp)
			if err != nil {
				t.Fatal(err)
			}
			dec := yaml.NewDecoder(bytes.NewReader(raw))
			dec.KnownFields(true)
			if err := dec.Decode(&g); err != nil {
				t.Fatalf("%s: %v", exp, err)
			}
			polFile := strings.TrimSuffix(exp, ".expect.yaml") + ".yaml"
			if g.Policy != "" {
				polFile = filepath.Join(filepath.Dir(exp), g.Policy)
			}
			src, err := os.ReadFile(polFile)
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			p, err := policy.Parse(polFile, src, policy.Options{Log: log})
			if g.Expect.LoadError != "" {
				if err == nil {
					p.Close()
					t.Fatalf("loaded; want an error mentioning %q (%s)", g.Expect.LoadError, g.Source)
				}
				wantErr(t, err, g.Expect.LoadError, polFile+":")
				return
			}
			if err != nil {
				t.Fatalf("load: %v (%s)", err, g.Source)
			}
			defer p.Close()
			if g.Request.GeoCity != "" {
				policy.SetGeoProvider(fakeGeo{g.Request.GeoCity, g.Request.GeoCountry})
				defer policy.SetGeoProvider(nil)
			}
			var out outcome
			for i := 0; i < max(1, g.Request.Repeat); i++ {
				out = runGolden(t, p, &g, log)
			}
			checkGolden(t, &g, out, logs.String())
		})
	}
}

func runGolden(t *testing.T, p *policy.Policy, g *golden, log *slog.Logger) outcome {
	t.Helper()
	u, err := url.Parse(g.Request.URL)
	if err != nil {
		t.Fatal(err)
	}
	client := g.Request.Client
	if client == "" {
		client = "192.0.2.1:40000"
	}
	start := time.Now()
	if g.Request.ConnStart != "" {
		if start, err = time.Parse(time.RFC3339, g.Request.ConnStart); err != nil {
			t.Fatal(err)
		}
	}
	ep := &exchange.Endpoint{ID: "ep_" + u.Hostname(), URL: u.Scheme + "://" + u.Host, Scheme: u.Scheme, Host: u.Hostname()}
	conn := &exchange.Conn{ID: "conn_1", ClientAddr: netip.MustParseAddrPort(client),
		PeerAddr: netip.MustParseAddrPort(client), Start: start, Endpoint: ep}
	var out outcome
	if err := p.RunConnect(conn); errors.Is(err, exchange.ErrCloseConnection) {
		out.closed = true
		return out
	} else if err != nil {
		t.Fatalf("on_tcp_connect: %v", err)
	}
	if u.Scheme == "tcp" {
		return out
	}
	h := http.Header{}
	host := u.Host
	for k, v := range g.Request.Headers {
		if strings.EqualFold(k, "host") {
			host = v
			continue
		}
		h.Set(k, v)
	}
	method := g.Request.Method
	if method == "" {
		method = "GET"
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	x := &exchange.Exchange{ID: "req_golden", Start: time.Now(), Conn: conn, Endpoint: ep, Log: log,
		Req: &exchange.Request{Method: method, Scheme: u.Scheme, Host: host, Path: path, RawQuery: u.RawQuery,
			Proto: "HTTP/1.1", Header: h, ContentLength: int64(g.Request.Length), Body: http.NoBody}}
	out.x = x
	if err := p.RunRequest(x); errors.Is(err, exchange.ErrCloseConnection) {
		out.closed = true
		return out
	} else if err != nil {
		t.Fatalf("on_http_request: %v", err)
	}
	if x.Res == nil && x.ForwardInternal == "" {
		seen := *x.Req
		seen.Header = x.Req.Header.Clone()
		out.upstream = &seen
		x.Res = upstreamResponse(g)
	}
	if x.Res != nil {
		if err := p.RunResponse(x); err != nil {
			t.Fatalf("on_http_response: %v", err)
		}
	}
	return out
}

func upstreamResponse(g *golden) *exchange.Response {
	status := g.Upstream.Status
	if status == 0 {
		status = 200
	}
	body := g.Upstream.Body
	if len(g.Upstream.BodyRepeat) == 2 {
		body = strings.Repeat(fmt.Sprint(g.Upstream.BodyRepeat[0]), g.Upstream.BodyRepeat[1].(int))
	}
	h := http.Header{}
	for k, v := range g.Upstream.Headers {
		h.Set(k, v)
	}
	return &exchange.Response{StatusCode: status, Header: h, ContentLength: int64(len(body)),
		Body: io.NopCloser(strings.NewReader(body))}
}

func checkGolden(t *testing.T, g *golden, out outcome, logs string) {
	t.Helper()
	e := &g.Expect
	t.Logf("source: %s", g.Source)
	if out.closed != e.Closed {
		t.Fatalf("connection closed = %v, want %v", out.closed, e.Closed)
	}
	if e.Closed {
		return
	}
	x := out.x
	if e.Upstream != nil && *e.Upstream != (out.upstream != nil) {
		t.Errorf("upstream contacted = %v, want %v", out.upstream != nil, *e.Upstream)
	}
	if len(e.ForwardInternalOneOf) > 0 {
		if !slices.Contains(e.ForwardInternalOneOf, x.ForwardInternal) {
			t.Errorf("forward-internal = %q, want one of %q", x.ForwardInternal, e.ForwardInternalOneOf)
		}
		return
	}
	if x.ForwardInternal != e.ForwardInternal {
		t.Errorf("forward-internal = %q, want %q", x.ForwardInternal, e.ForwardInternal)
	}
	if e.ForwardInternal != "" {
		return
	}
	if x.Res == nil {
		t.Fatal("no response")
	}
	if e.Status != 0 && x.Res.StatusCode != e.Status {
		t.Errorf("status = %d, want %d", x.Res.StatusCode, e.Status)
	}
	for k, v := range e.Headers {
		if got := x.Res.Header.Get(k); got != v {
			t.Errorf("response header %s = %q, want %q", k, got, v)
		}
	}
	for _, k := range e.HeadersAbsent {
		if v := x.Res.Header.Values(k); len(v) > 0 {
			t.Errorf("response header %s = %q, want none", k, v)
		}
	}
	for _, k := range e.HeadersPresent {
		if x.Res.Header.Get(k) == "" {
			t.Errorf("response header %s missing", k)
		}
	}
	if e.Body != nil || e.BodyRegexp != "" || e.DecodedBodyLength != 0 {
		var r io.Reader = strings.NewReader("")
		if x.Res.Body != nil {
			r = x.Res.Body
		}
		// Decode what sluice encoded, not what the upstream sent encoded.
		if ce := x.Res.Header.Get("Content-Encoding"); ce != "" && ce != g.Upstream.Headers["content-encoding"] {
			r = decoder(t, ce, r)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if e.Body != nil && string(b) != *e.Body {
			t.Errorf("body = %q, want %q", b, *e.Body)
		}
		if e.BodyRegexp != "" && !regexp.MustCompile(e.BodyRegexp).Match(b) {
			t.Errorf("body %q does not match %s", b, e.BodyRegexp)
		}
		if e.DecodedBodyLength != 0 && len(b) != e.DecodedBodyLength {
			t.Errorf("decoded body is %d bytes, want %d", len(b), e.DecodedBodyLength)
		}
	}
	if up := out.upstream; up != nil {
		if e.UpstreamURI != "" && up.URI() != e.UpstreamURI {
			t.Errorf("upstream got %q, want %q", up.URI(), e.UpstreamURI)
		}
		if e.UpstreamHost != "" && up.Host != e.UpstreamHost {
			t.Errorf("upstream host %q, want %q", up.Host, e.UpstreamHost)
		}
		for k, v := range e.UpstreamHeaders {
			if got := up.Header.Get(k); got != v {
				t.Errorf("upstream header %s = %q, want %q", k, got, v)
			}
		}
		for _, k := range e.UpstreamHeadersAbsent {
			if up.Header.Get(k) != "" {
				t.Errorf("upstream header %s still present", k)
			}
		}
	} else if e.UpstreamURI != "" || len(e.UpstreamHeaders) > 0 {
		t.Error("upstream not contacted")
	}
	if e.Log != "" && !strings.Contains(logs, e.Log) {
		t.Errorf("log does not contain %q:\n%s", e.Log, logs)
	}
	for k, v := range e.Vars {
		got, ok := x.Vars[k]
		if !ok || fmt.Sprint(got) != fmt.Sprint(v) {
			t.Errorf("vars.%s = %#v, want %#v", k, got, v)
		}
	}
}
