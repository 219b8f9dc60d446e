package cli

import (
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/proxy/upstream"
)

func parse(t *testing.T, src string) *config.Config {
	t.Helper()
	c, err := config.Parse("/etc/sluice.yaml", []byte(src), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const twoEndpoints = `
limits: {dial_timeout: 3s, max_body_bytes: 1MiB}
endpoints:
  - url: http://:8080
    upstream: [1, 2]
    load_balancing:
      policy: p2c
      health_check: {path: /h, interval: 2s}
      passive: {max_fails: 5, eject_duration: 1m}
    limits: {max_body_bytes: 2MiB}
  - url: https://10.0.0.1
    tls: [{cert: a.crt, key: a.key}]
    upstream: https://api
    insecure_skip_verify: true
    traffic_policy: {on_http_request: []}
`

func TestEndpointConfig(t *testing.T) {
	c := parse(t, twoEndpoints)
	e := endpointConfig(c, &c.Endpoints[0], nil)
	if e.URL != "http://:8080" || len(e.Upstream.URLs) != 2 || e.Upstream.Balance != "p2c" ||
		e.Upstream.HealthCheck.Path != "/h" || e.Upstream.HealthCheck.Interval != 2*time.Second ||
		e.Upstream.Passive.MaxFails != 5 || e.Upstream.Passive.Eject != time.Minute || e.Hooks != nil {
		t.Errorf("endpoint 0: %+v", e)
	}
	if e.Limits.MaxBodyBytes != 2<<20 || e.Limits.DialTimeout != 3*time.Second {
		t.Errorf("merged limits: %+v", e.Limits)
	}
	e = endpointConfig(c, &c.Endpoints[1], nil)
	if len(e.TLS) != 1 || e.TLS[0].Cert != "/etc/a.crt" || !e.InsecureSkipVerify || e.Upstream.HealthCheck != nil {
		t.Errorf("endpoint 1: %+v", e)
	}
}

func TestLocateApplyError(t *testing.T) {
	c := parse(t, twoEndpoints)
	for msg, want := range map[string]string{
		"proxy: endpoints[1] https://10.0.0.1: tls: bad":            "/etc/sluice.yaml:11:5: endpoints[1]: proxy: endpoints[1]",
		"proxy: listen :8080: listen tcp :8080: address in use":     "/etc/sluice.yaml:4:5: endpoints[0]: proxy: listen",
		"proxy: listen 10.0.0.1:443: listen tcp: cannot assign":     "/etc/sluice.yaml:11:5: endpoints[1]: proxy: listen",
		"proxy: endpoint http://:8080 (listen :8080): port already": "/etc/sluice.yaml:4:5: endpoints[0]: proxy: endpoint",
		"something else": "something else",
	} {
		got := locateApplyError(c, errors.New(msg)).Error()
		if len(got) < len(want) || got[:len(want)] != want {
			t.Errorf("%q -> %q, want prefix %q", msg, got, want)
		}
	}
}

func TestPolicyKey(t *testing.T) {
	a := parse(t, twoEndpoints)
	b := parse(t, "\n\n"+twoEndpoints) // same inline text, other lines
	ka, _ := policyKey(&a.Endpoints[1])
	kb, _ := policyKey(&b.Endpoints[1])
	if ka == "" || ka != kb {
		t.Errorf("inline keys %q %q: want equal and set", ka, kb)
	}
	if k, _ := policyKey(&a.Endpoints[0]); k != "" {
		t.Errorf("no policy: key %q", k)
	}
	c := parse(t, "endpoints: [{url: 'http://:1', upstream: 1, traffic_policy_file: p.yaml}]")
	if k, _ := policyKey(&c.Endpoints[0]); k != "file:/etc/p.yaml" {
		t.Errorf("file key %q", k)
	}
}

func TestEndpointDiff(t *testing.T) {
	a := parse(t, "endpoints: [{url: 'http://:1', upstream: 1}, {url: 'http://:2', upstream: 1}]")
	b := parse(t, "endpoints: [{url: 'http://:2', upstream: 2}, {url: 'http://:3', upstream: 1}]")
	added, removed := endpointDiff(a, b)
	if len(added) != 1 || added[0] != "http://:3" || len(removed) != 1 || removed[0] != "http://:1" {
		t.Errorf("added %v removed %v", added, removed)
	}
}

// What config accepts as an upstream, the proxy accepts too.
func TestUpstreamFormsAgree(t *testing.T) {
	for _, tc := range []struct{ kind, in string }{
		{"http", "8080"}, {"http", "localhost:9000"}, {"http", "[::1]:9000"}, {"http", "https://api.example.com/"},
		{"http", "h2c://127.0.0.1:50051"}, {"http", "unix:/run/app.sock"}, {"http", "unix:///run/app.sock"},
		{"tcp", "5432"}, {"tcp", "db:5432"}, {"tls", "tcp://db:443"}, {"tcp", "unix:/run/db.sock"},
	} {
		out, err := config.ParseUpstream(tc.kind, tc.in)
		if err != nil {
			t.Errorf("config.ParseUpstream(%s, %q): %v", tc.kind, tc.in, err)
			continue
		}
		if _, err := upstream.ParseTarget(out); err != nil {
			t.Errorf("%q -> %q refused by the proxy: %v", tc.in, out, err)
		}
	}
}

func TestWarnRestartNeeded(t *testing.T) {
	var buf strings.Builder
	r := &runner{log: slog.New(slog.NewTextHandler(&buf, nil)), format: "text"}
	old := parse(t, "admin: 127.0.0.1:1\nendpoints: [{url: 'http://:1', upstream: 1}]")
	same := parse(t, "admin: 127.0.0.1:1\nendpoints: [{url: 'http://:2', upstream: 2}]")
	r.warnRestartNeeded(old, same)
	if buf.Len() != 0 {
		t.Errorf("endpoint-only change warned: %s", buf.String())
	}
	changed := parse(t, "admin: 127.0.0.1:2\ntrusted_proxies: [10.0.0.0/8]\nlog: {format: json}\nlimits: {idle_timeout: 1s}\nendpoints: [{url: 'http://:1', upstream: 1}]")
	r.warnRestartNeeded(old, changed)
	for _, want := range []string{"admin", "trusted_proxies", "log.format", "idle_timeout"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("warning lacks %s: %s", want, buf.String())
		}
	}
}

func TestLocateDuplicate(t *testing.T) {
	c := parse(t, "endpoints:\n  - url: http://:8080\n    upstream: 1\n  - url: http://:8080\n    upstream: 2\n")
	err := locateApplyError(c, errors.New("proxy: endpoint http://:8080 (listen :8080): duplicate catch-all endpoint (also http://:8080)"))
	if !strings.HasPrefix(err.Error(), "/etc/sluice.yaml:4:5: endpoints[1]: ") {
		t.Errorf("duplicate located at %q, want the second entry", err)
	}
}
