package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/internal/testcert"
)

// An https endpoint from the config file terminates TLS with its cert, and
// `sluice http --url https://... --tls-cert/--tls-key` does the same.
func TestHTTPSEndpoint(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "tls")
	dir := t.TempDir()
	cert, key := testcert.Generate(t, dir, "app.test")
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: testcert.Pool(t, cert), ServerName: "app.test"},
		DisableKeepAlives: true,
	}}
	check := func(p *proc) {
		t.Helper()
		addr := p.addr("127.0.0.1:0")
		req, _ := http.NewRequest("GET", "https://"+addr+"/secure", nil)
		req.Host = "app.test"
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("https GET: %v", err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(body) != "tls /secure" || res.TLS == nil {
			t.Errorf("https GET = %d %q", res.StatusCode, body)
		}
	}
	cfg := writeConfig(t, dir, fmt.Sprintf(`
log: {format: json}
endpoints:
  - url: https://app.test
    listen: 127.0.0.1:0
    tls: {cert: %s, key: %s}
    upstream: %s
`, filepath.Base(cert), filepath.Base(key), b.port()))
	check(start(t, "serve", "-c", cfg))
	check(start(t, "http", b.port(), "--listen", "127.0.0.1:0", "--url", "https://app.test", "--tls-cert", cert, "--tls-key", key, "--log-format", "json"))
}

// A reload may add and remove listeners; a reload the proxy refuses (a
// port in use) names the endpoint's file:line:col and changes nothing.
func TestReloadListeners(t *testing.T) {
	t.Parallel()
	a, b := newBackend(t, "a"), newBackend(t, "b")
	second := freePort(t)
	dir := t.TempDir()
	one := fmt.Sprintf("log: {format: json}\nendpoints:\n  - url: http://:80\n    listen: 127.0.0.1:0\n    upstream: %s\n", a.port())
	two := one + fmt.Sprintf("  - url: http://:81\n    listen: %s\n    upstream: %s\n", second, b.port())
	cfg := writeConfig(t, dir, one)
	p := start(t, "serve", "-c", cfg)
	addr := p.addr("127.0.0.1:0")

	n := p.nLines()
	writeConfig(t, dir, two)
	p.waitLog(n, "config reloaded", msg("config reloaded"))
	if code, body, _ := get(t, second, "", "/2"); code != 200 || body != "b /2" {
		t.Errorf("new listener: %d %q", code, body)
	}
	if code, body, _ := get(t, addr, "", "/1"); code != 200 || body != "a /1" {
		t.Errorf("kept listener: %d %q", code, body)
	}

	// Occupy a port, then ask for it: Apply fails, all stays as it was.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	n = p.nLines()
	bad := one + fmt.Sprintf("  - url: http://:82\n    listen: %s\n    upstream: %s\n", busy.Addr(), b.port())
	writeConfig(t, dir, bad)
	l, _ := p.waitLog(n, "reload failure", msg("config reload failed; the running config stays"))
	if e, _ := l["err"].(string); !regexp.MustCompile(`sluice\.yaml:6:5: endpoints\[1\].*listen`).MatchString(e) {
		t.Errorf("apply error lacks the entry's position: %q", e)
	}
	if code, body, _ := get(t, second, "", "/2"); code != 200 || body != "b /2" {
		t.Errorf("after failed reload, second listener: %d %q", code, body)
	}

	// Back to one endpoint: the second listener closes.
	n = p.nLines()
	writeConfig(t, dir, one)
	p.waitLog(n, "config reloaded", msg("config reloaded"))
	if c, err := net.Dial("tcp", second); err == nil {
		// The listener drains in the background; a connection may still be
		// accepted for a moment, but it must not be served by b for long.
		c.Close()
	}
	if code, body, _ := get(t, addr, "", "/1"); code != 200 || body != "a /1" {
		t.Errorf("kept listener after removal: %d %q", code, body)
	}
}

// Broken policies stop the start with the policy's file:line:col, inline
// ones pointing into the config file.
func TestStartPolicyErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.yaml"), []byte("on_http_request:\n  - actions:\n      - type: denny\n"), 0o644)
	cfg := writeConfig(t, dir, "endpoints:\n  - url: http://:80\n    upstream: 1\n    traffic_policy_file: p.yaml\n")
	code, _, errOut := runSluice(t, "serve", "-c", cfg, "--log-format", "json")
	if code != 1 || !regexp.MustCompile(`p\.yaml:3:\d+: .*denny`).MatchString(errOut) {
		t.Errorf("file policy: exit %d, %s", code, errOut)
	}
	cfg = writeConfig(t, dir, "endpoints:\n  - url: http://:80\n    upstream: 1\n    traffic_policy:\n      on_http_request:\n        - expressions: [\"req.nope == 1\"]\n")
	code, _, errOut = runSluice(t, "serve", "-c", cfg, "--log-format", "json")
	if code != 1 || !regexp.MustCompile(`sluice\.yaml:6:\d+: .*nope`).MatchString(errOut) {
		t.Errorf("inline policy: exit %d, %s", code, errOut)
	}
	code, _, errOut = runSluice(t, "http", "1", "--traffic-policy-file", filepath.Join(dir, "p.yaml"))
	if code != 1 || !strings.Contains(errOut, "p.yaml:3:") {
		t.Errorf("http --traffic-policy-file: exit %d, %s", code, errOut)
	}
}

// --access-log writes one JSON line per request to stdout.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "acc")
	p := start(t, "http", b.port(), "--listen", "127.0.0.1:0", "--access-log", "--log-format", "json")
	get(t, p.addr("127.0.0.1:0"), "", "/logged")
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	out := p.stdoutText()
	found := false
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("access log line is not JSON: %q", line)
		}
		if strings.Contains(line, "/logged") {
			found = true
		}
	}
	if !found {
		t.Errorf("no access log line for /logged in %q", out)
	}
}

// SIGHUP in `sluice http` mode re-reads the policy file.
func TestAgentSIGHUPPolicy(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "agent")
	dir := t.TempDir()
	policy := filepath.Join(dir, "p.yaml")
	writeFile(t, policy, "on_http_response:\n  - actions:\n      - type: add-headers\n        config: {headers: {x-v: one}}\n")
	p := start(t, "http", b.port(), "--listen", "127.0.0.1:0", "--traffic-policy-file", policy, "--log-format", "json")
	addr := p.addr("127.0.0.1:0")
	if _, _, h := get(t, addr, "", "/"); h.Get("X-V") != "one" {
		t.Fatalf("x-v = %q", h.Get("X-V"))
	}
	writeFile(t, policy, "on_http_response:\n  - actions:\n      - type: add-headers\n        config: {headers: {x-v: two}}\n")
	p.signal(syscall.SIGHUP)
	p.waitLog(0, "policy reloaded", msg("policy reloaded"))
	if _, _, h := get(t, addr, "", "/"); h.Get("X-V") != "two" {
		t.Errorf("after SIGHUP x-v = %q", h.Get("X-V"))
	}
}
