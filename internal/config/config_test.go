package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestFull(t *testing.T) {
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("/etc/sluice/sluice.yaml", data, env(map[string]string{"APP_UPSTREAM": "9000", "HOME": "/root"}))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.Admin != "127.0.0.1:4040" || c.Log.Format != "json" || c.Log.Level != "debug" || c.Log.AccessLog != "stdout" {
		t.Errorf("top level: %+v %+v", c.Admin, c.Log)
	}
	if got := len(c.Trusted); got != 2 || c.Trusted[1].String() != "192.168.1.1/32" {
		t.Errorf("trusted: %v", c.Trusted)
	}
	want := Limits{
		ReadHeaderTimeout: Duration(10 * time.Second), IdleTimeout: Duration(2 * time.Minute),
		DialTimeout: Duration(5 * time.Second), ResponseHeaderTimeout: Duration(30 * time.Second),
		ShutdownTimeout: Duration(15 * time.Second), MaxHeaderBytes: 64 << 10, MaxBodyBytes: 10_000_000,
		UpstreamIdleTimeout: Duration(time.Minute), UpstreamIdleConns: 64,
	}
	if c.Limits != want {
		t.Errorf("limits = %+v, want %+v", c.Limits, want)
	}
	if len(c.Endpoints) != 4 {
		t.Fatalf("endpoints: %d", len(c.Endpoints))
	}
	e0 := c.Endpoints[0]
	if e0.Scheme != "https" || e0.TLS[0].Cert != "/etc/sluice/certs/app.crt" || e0.TrafficPolicyFile != "/etc/sluice/policies/app.yaml" {
		t.Errorf("e0: %+v", e0)
	}
	if !reflect.DeepEqual([]string(e0.Upstream), []string{"http://127.0.0.1:9000"}) {
		t.Errorf("e0 upstream: %v", e0.Upstream)
	}
	if m := c.Limits.Merge(e0.Limits); m.MaxBodyBytes != 1<<20 || m.IdleTimeout != want.IdleTimeout ||
		m.UpstreamIdleConns != 8 || m.UpstreamIdleTimeout != want.UpstreamIdleTimeout {
		t.Errorf("merged limits: %+v", m)
	}
	e1 := c.Endpoints[1]
	if !reflect.DeepEqual([]string(e1.Upstream), []string{"http://10.0.0.5:80", "http://10.0.0.6:80", "http://127.0.0.1:9000"}) {
		t.Errorf("e1 upstream: %v", e1.Upstream)
	}
	lb := e1.LoadBalancing
	if lb.Policy != "least_requests" || lb.HealthCheck.Path != "/healthz" || lb.HealthCheck.Interval.D() != 5*time.Second ||
		lb.HealthCheck.Unhealthy != 3 || lb.Passive.MaxFails != 3 || lb.Passive.EjectDuration.D() != 30*time.Second {
		t.Errorf("e1 lb: %+v %+v", lb, lb.HealthCheck)
	}
	if !e1.InsecureSkipVerify || e1.Listen != "127.0.0.1:8080" || e1.TrafficPolicy == nil {
		t.Errorf("e1: %+v", e1)
	}
	// Inline policies keep ngrok's ${expr} and are not env-expanded.
	if !strings.Contains(nodeText(t, e1.TrafficPolicy), "${HOME}") {
		t.Errorf("inline policy was expanded: %s", nodeText(t, e1.TrafficPolicy))
	}
	if e1.PolicyName != "/etc/sluice/sluice.yaml:35" {
		t.Errorf("policy name %q", e1.PolicyName)
	}
	if e2 := c.Endpoints[2]; e2.Scheme != "tcp" || e2.Upstream[0] != "tcp://db.internal:5432" {
		t.Errorf("e2: %+v", e2)
	}
	e3 := c.Endpoints[3]
	if len(e3.TLS) != 2 || e3.TLS[0].Cert != "/abs/a.crt" || e3.TLS[1].Key != "/etc/sluice/b.key" || e3.Upstream[0] != "unix:/run/app.sock" {
		t.Errorf("e3: %+v", e3)
	}
}

func nodeText(t *testing.T, n any) string {
	t.Helper()
	var b strings.Builder
	enc := newEncoder(&b)
	if err := enc.Encode(n); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestBad runs every testdata/bad/*.yaml file; its first line says
// "# want: SUBSTRING" of the expected error.
func TestBad(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(data), "\n")
			want, ok := strings.CutPrefix(first, "# want: ")
			if !ok {
				t.Fatalf("%s: first line must be '# want: ...'", f)
			}
			_, err = Parse("bad.yaml", data, env(nil))
			if err == nil {
				t.Fatalf("no error, want %q", want)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error\n  %v\nwant it to contain\n  %s", err, want)
			}
		})
	}
}

func TestAllErrorsAtOnce(t *testing.T) {
	src := "adminn: x\nendpoints:\n  - url: http://:1\n    upstream: 1\n    lb: x\n"
	_, err := Parse("c.yaml", []byte(src), env(nil))
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{`c.yaml:1:1: unknown key "adminn"`, `c.yaml:5:5: unknown key "lb"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v: missing %q", err, want)
		}
	}
}

func TestExpand(t *testing.T) {
	e := env(map[string]string{"A": "x", "EMPTY": ""})
	for _, tc := range []struct{ in, out, err string }{
		{"plain", "plain", ""},
		{"${A}", "x", ""},
		{"a-${A}-b", "a-x-b", ""},
		{"${B:-def}", "def", ""},
		{"${EMPTY:-def}", "def", ""},
		{"${EMPTY}", "", ""},
		{"$${A}", "${A}", ""},
		{"${not.env}", "${not.env}", ""},
		{"${A", "${A", ""},
		{"${B}", "", "environment variable B is not set"},
	} {
		got, err := expand(tc.in, e)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("expand(%q): err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.out {
			t.Errorf("expand(%q) = %q, %v; want %q", tc.in, got, err, tc.out)
		}
	}
}

func TestParseUpstream(t *testing.T) {
	for _, tc := range []struct{ kind, in, out, err string }{
		{"http", "8080", "http://127.0.0.1:8080", ""},
		{"http", "localhost:9000", "http://localhost:9000", ""},
		{"http", "[::1]:9000", "http://[::1]:9000", ""},
		{"http", "https://api.example.com", "https://api.example.com", ""},
		{"http", "h2c://127.0.0.1:50051", "h2c://127.0.0.1:50051", ""},
		{"http", "HTTP://a:1/", "http://a:1/", ""},
		{"http", "HTTP://a:1/base", "", "takes no path or query"},
		{"http", "http://a:1?x=1", "", "takes no path or query"},
		{"http", "unix:/run/app.sock", "unix:/run/app.sock", ""},
		{"http", "unix:///run/app.sock", "unix:/run/app.sock", ""},
		{"tcp", "5432", "tcp://127.0.0.1:5432", ""},
		{"tcp", "db:5432", "tcp://db:5432", ""},
		{"tls", "tcp://db:5432", "tcp://db:5432", ""},
		{"http", "0", "", "out of range"},
		{"http", "70000", "", "out of range"},
		{"http", "ftp://x", "", "unsupported upstream scheme"},
		{"http", "justahost", "", "want a port, host:port or a URL"},
		{"tcp", "http://x:1", "", "a tcp upstream is"},
		{"http", "unix:", "", "needs a socket path"},
		{"http", "unix:////", "", "needs a socket path"}, // found by FuzzParseUpstream: printed as "unix://", which did not parse back
		{"http", "unix:////run//app.sock", "unix:/run/app.sock", ""},
		{"http", "unix: /", "", "needs a socket path"}, // found by FuzzParseUpstream too, as were the next two
		{"http", "unix:0 /", "unix:0", ""},
		{"http", "unix:a/ /", "unix:a", ""},
		{"http", "unix: // /run/app.sock ", "unix:/run/app.sock", ""},
		{"http", "", "", "empty"},
	} {
		got, err := ParseUpstream(tc.kind, tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseUpstream(%s, %q): err %v, want %q", tc.kind, tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.out {
			t.Errorf("ParseUpstream(%s, %q) = %q, %v; want %q", tc.kind, tc.in, got, err, tc.out)
		}
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"1024": 1024, "1KiB": 1024, "1kb": 1000, "2MiB": 2 << 20, "1 GB": 1e9, "8k": 8192, "0": 0} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"-1", "1XB", "", "99999999999GiB"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q): no error", in)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"endpoints: [{url: http://:1, upstream: 1}]", "a: [", "log: {format: x}", "endpoints:\n - tls: [1]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Parse("f.yaml", data, env(nil)) // must not panic
	})
}

func TestInternalHTTPSNeedsNoTLS(t *testing.T) {
	src := "endpoints:\n  - url: https://billing.internal\n    upstream: 7000\n"
	if _, err := Parse("c.yaml", []byte(src), env(nil)); err != nil {
		t.Fatalf("internal https endpoint without tls: %v", err)
	}
}

// ParseUpstream never panics, and its output is a fixed point: parsing the
// canonical form again gives the same string.
func FuzzParseUpstream(f *testing.F) {
	for _, s := range []string{"8080", "h:1", "http://a", "h2c://a:1", "unix:/s", "tcp://a:1", "[::1]:9", "https://a:99999"} {
		f.Add("http", s)
		f.Add("tcp", s)
	}
	f.Fuzz(func(t *testing.T, kind, s string) {
		out, err := ParseUpstream(kind, s)
		if err != nil {
			return
		}
		again, err := ParseUpstream(kind, out)
		if err != nil || again != out {
			t.Fatalf("ParseUpstream(%q, %q) = %q, but again = %q, %v", kind, s, out, again, err)
		}
	})
}

func TestErrorFloodIsCapped(t *testing.T) {
	src := "endpoints: [{url: 'http://:1', upstream: 1}]\n" + strings.Repeat("x: 1\n", 200)
	_, err := Parse("c.yaml", []byte(src), env(nil))
	if err == nil || strings.Count(err.Error(), "\n") != maxErrors || !strings.Contains(err.Error(), "c.yaml: and 150 more errors") {
		t.Errorf("got %d lines: %v", strings.Count(err.Error(), "\n"), err)
	}
}

// The examples in docs/config.md stay valid.
func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Skip("docs/config.md not found")
	}
	blocks := strings.Split(string(doc), "```yaml\n")[1:]
	if len(blocks) == 0 {
		t.Fatal("no yaml blocks in docs/config.md")
	}
	for i, b := range blocks {
		src, _, _ := strings.Cut(b, "```")
		if _, err := Parse(fmt.Sprintf("config.md#%d", i), []byte(src), env(map[string]string{})); err != nil {
			t.Errorf("docs/config.md yaml block %d: %v", i, err)
		}
	}
}

func TestLogValueHasNoSecrets(t *testing.T) {
	src := "tunnel_server: null\nadmin: 127.0.0.1:4040\nendpoints:\n  - url: http://:1\n    upstream: 9000\n    traffic_policy: {on_http_request: [{actions: [{type: basic-auth, config: {credentials: ['user:${PW}']}}]}]}\n"
	c, err := Parse("c.yaml", []byte(src), env(map[string]string{"PW": "hunter2"}))
	if err != nil {
		t.Fatal(err)
	}
	s := c.LogValue().String()
	if strings.Contains(s, "hunter2") || strings.Contains(s, "credentials") || !strings.Contains(s, "http://:1 -> http://127.0.0.1:9000 policy=inline") {
		t.Errorf("LogValue = %s", s)
	}
}
