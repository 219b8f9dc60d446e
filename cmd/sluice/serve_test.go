package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// `sluice http <port>` fronts a backend; flags come after the positional
// argument, as users type them.
func TestHTTPCommand(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "one")
	p := start(t, "http", b.port(), "--listen", "127.0.0.1:0", "--log-format", "json", "--admin", "127.0.0.1:0")
	addr := p.addr("127.0.0.1:0")
	code, body, h := get(t, addr, "", "/hello")
	if code != 200 || body != "one /hello" || h.Get("X-Backend") != "one" {
		t.Fatalf("GET /hello = %d %q %v", code, body, h)
	}
	p.signal(syscall.SIGINT)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d after SIGINT", code)
	}
}

// The documented default: `sluice http 9000` listens on 127.0.0.1:8000.
// Skipped when something else holds port 8000 on this machine.
func TestHTTPCommandDefaultListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:8000")
	if err != nil {
		t.Skip("127.0.0.1:8000 is busy")
	}
	ln.Close()
	b := newBackend(t, "dflt")
	p := start(t, "http", b.port(), "--log-format", "json")
	if addr := p.addr("127.0.0.1:8000"); addr != "127.0.0.1:8000" {
		t.Fatalf("bound %s", addr)
	}
	if code, body, _ := get(t, "127.0.0.1:8000", "", "/x"); code != 200 || body != "dflt /x" {
		t.Fatalf("GET = %d %q", code, body)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// `sluice tcp` pipes bytes to a TCP service.
func TestTCPCommand(t *testing.T) {
	t.Parallel()
	echo := serveRaw(t, func(c net.Conn) { _, _ = io.Copy(c, c) })
	p := start(t, "tcp", echo.Addr().String(), "--listen", "127.0.0.1:0", "--log-format", "json")
	c, err := net.Dial("tcp", p.addr("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping\n" {
		t.Fatalf("echo through sluice tcp: %q %v", buf, err)
	}
}

func writeConfig(t *testing.T, dir, content string) string {
	t.Helper()
	path := filepath.Join(dir, "sluice.yaml")
	writeFile(t, path, content)
	return path
}

// Several endpoints on one listener, chosen by Host; a second listener.
func TestServeRouting(t *testing.T) {
	t.Parallel()
	a, b, c := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")
	other := freePort(t)
	_, otherPort, _ := net.SplitHostPort(other)
	cfg := writeConfig(t, t.TempDir(), fmt.Sprintf(`
log: {format: json}
endpoints:
  - url: http://a.test
    listen: 127.0.0.1:0
    upstream: %s
  - url: http://b.test
    listen: 127.0.0.1:0
    upstream: http://%s
  - url: http://:%s
    listen: %s
    upstream: [%s]
`, a.port(), b.addr(), otherPort, other, c.addr()))
	p := start(t, "serve", "-c", cfg)
	addr := p.addr("127.0.0.1:0")
	for host, want := range map[string]string{"a.test": "a /p", "b.test": "b /p", "B.TEST:80": "b /p"} {
		if code, body, _ := get(t, addr, host, "/p"); code != 200 || body != want {
			t.Errorf("Host %s: %d %q, want %q", host, code, body, want)
		}
	}
	// No endpoint for the host: the proxy answers 421 Misdirected Request.
	if code, _, _ := get(t, addr, "nope.test", "/p"); code != http.StatusMisdirectedRequest && code != http.StatusNotFound {
		t.Errorf("unknown host: %d, want 421 (or 404)", code)
	}
	p.addr(other)
	if code, body, _ := get(t, other, "anything.example", "/q"); code != 200 || body != "c /q" {
		t.Errorf("second listener: %d %q", code, body)
	}
}

// The admin listener: health, readiness, and metrics that move.
func TestAdminEndpoints(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "m")
	cfg := writeConfig(t, t.TempDir(), fmt.Sprintf(`
admin: 127.0.0.1:0
log: {format: json}
endpoints:
  - url: http://:80
    listen: 127.0.0.1:0
    upstream: %s
`, b.port()))
	p := start(t, "serve", "-c", cfg)
	addr, adm := p.addr("127.0.0.1:0"), p.adminAddr()
	if code, body, _ := get(t, adm, "", "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	p.waitLog(0, "sluice started", msg("sluice started"))
	if code, _, _ := get(t, adm, "", "/readyz"); code != 200 {
		t.Errorf("/readyz = %d", code)
	}
	_, before, _ := get(t, adm, "", "/metrics")
	for i := 0; i < 3; i++ {
		get(t, addr, "", "/m")
	}
	_, after, _ := get(t, adm, "", "/metrics")
	for _, name := range []string{"sluice_build_info{goversion=", `version="v0.0.0-e2e"`, "sluice_config_reloads_total", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(after, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if sumRequests(after)-sumRequests(before) < 3 {
		t.Errorf("request counters did not move by 3: before %v after %v", sumRequests(before), sumRequests(after))
	}
}

var requestsLine = regexp.MustCompile(`(?m)^sluice_http_requests_total\{[^}]*\} ([0-9.e+]+)$`)

// sumRequests adds up the proxy's request counter over all label sets.
func sumRequests(metrics string) float64 {
	var sum float64
	for _, m := range requestsLine.FindAllStringSubmatch(metrics, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		sum += v
	}
	return sum
}

// A policy file applies, and changes to it are picked up.
func TestServePolicyFile(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "pol")
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	writeFile(t, policy, `
on_http_request:
  - expressions: ["req.url.path.startsWith('/admin')"]
    actions:
      - type: deny
        config: {status_code: 403}
  - actions:
      - type: add-headers
        config:
          headers: {x-client: "${conn.client_ip}"}
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers: {x-served-by: sluice}
`)
	cfg := writeConfig(t, dir, fmt.Sprintf(`
log: {format: json}
endpoints:
  - url: http://:80
    listen: 127.0.0.1:0
    upstream: %s
    traffic_policy_file: policy.yaml
`, b.port()))
	p := start(t, "serve", "-c", cfg)
	addr := p.addr("127.0.0.1:0")
	code, body, h := get(t, addr, "", "/hello")
	if code != 200 || body != "pol /hello" || h.Get("X-Served-By") != "sluice" || h.Get("X-Seen-Client") != "127.0.0.1" {
		t.Errorf("GET /hello = %d %q %v", code, body, h)
	}
	if code, _, _ := get(t, addr, "", "/admin/x"); code != 403 {
		t.Errorf("GET /admin/x = %d, want 403", code)
	}
	// Change the policy: the file watcher swaps it in.
	n := p.nLines()
	writeFile(t, policy, `
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers: {x-served-by: sluice-v2}
`)
	p.waitLog(n, "policy reloaded", func(l map[string]any) bool {
		s, _ := l["msg"].(string)
		return strings.Contains(s, "reloaded") && strings.Contains(fmt.Sprint(l), "policy")
	})
	if code, _, h := get(t, addr, "", "/admin/x"); code != 200 || h.Get("X-Served-By") != "sluice-v2" {
		t.Errorf("after policy change: %d %v", code, h)
	}
}

// Inline traffic_policy in the config file.
func TestServeInlinePolicy(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "inl")
	cfg := writeConfig(t, t.TempDir(), fmt.Sprintf(`
log: {format: json}
endpoints:
  - url: http://:80
    listen: 127.0.0.1:0
    upstream: %s
    traffic_policy:
      on_http_request:
        - actions:
            - type: custom-response
              config: {status_code: 418, body: "inline ${req.url.path}"}
`, b.port()))
	p := start(t, "serve", "-c", cfg)
	if code, body, _ := get(t, p.addr("127.0.0.1:0"), "", "/tea"); code != 418 || body != "inline /tea" {
		t.Errorf("GET /tea = %d %q", code, body)
	}
}

// policy validate: FILE:LINE:COL on errors (exit 1), "ok" otherwise.
func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("on_http_request:\n  - actions:\n      - type: deny\n"), 0o644)
	os.WriteFile(bad, []byte("on_http_request:\n  - actions:\n      - type: deny2\n"), 0o644)
	code, out, errOut := runSluice(t, "policy", "validate", good)
	if code != 0 || !strings.Contains(out, good+": ok") {
		t.Errorf("valid file: exit %d, %q %q", code, out, errOut)
	}
	code, out, errOut = runSluice(t, "policy", "validate", good, bad)
	if code != 1 || !strings.Contains(out, good+": ok") || !regexp.MustCompile(regexp.QuoteMeta(bad)+`:3:\d+: .*deny2`).MatchString(out) {
		t.Errorf("invalid file: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// An internal endpoint has no listener; forward-internal reaches it.
func TestServeForwardInternal(t *testing.T) {
	t.Parallel()
	pub, billing := newBackend(t, "pub"), newBackend(t, "billing")
	cfg := writeConfig(t, t.TempDir(), fmt.Sprintf(`
log: {format: json}
endpoints:
  - url: http://:80
    listen: 127.0.0.1:0
    upstream: %s
    traffic_policy:
      on_http_request:
        - expressions: ["req.url.path.startsWith('/billing')"]
          actions:
            - type: forward-internal
              config: {url: "https://billing.internal"}
  - url: https://billing.internal
    upstream: %s
`, pub.port(), billing.port()))
	p := start(t, "serve", "-c", cfg)
	addr := p.addr("127.0.0.1:0")
	if code, body, _ := get(t, addr, "", "/billing/1"); code != 200 || body != "billing /billing/1" {
		t.Errorf("forwarded: %d %q", code, body)
	}
	if code, body, _ := get(t, addr, "", "/other"); code != 200 || body != "pub /other" {
		t.Errorf("public: %d %q", code, body)
	}
}

// --trusted-proxies makes X-Forwarded-For the client IP, only for trusted
// peers.
func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "xff")
	policy := filepath.Join(t.TempDir(), "p.yaml")
	writeFile(t, policy, "on_http_request:\n  - actions:\n      - type: add-headers\n        config: {headers: {x-client: \"${conn.client_ip}\"}}\n")
	for _, tc := range []struct {
		trusted, want string
	}{
		{"127.0.0.0/8", "203.0.113.9"},
		{"10.0.0.0/8", "127.0.0.1"},
	} {
		p := start(t, "http", b.port(), "--listen", "127.0.0.1:0", "--trusted-proxies", tc.trusted,
			"--traffic-policy-file", policy, "--log-format", "json")
		req, _ := http.NewRequest("GET", "http://"+p.addr("127.0.0.1:0")+"/", nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		res, err := newClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get("X-Seen-Client"); got != tc.want {
			t.Errorf("trusted %s: client ip %q, want %q", tc.trusted, got, tc.want)
		}
	}
}

// Limits from flags and from the file (per endpoint over top level) reach
// the proxy.
func TestLimits(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "lim")
	post := func(addr, host string, n int) int {
		req, _ := http.NewRequest("POST", "http://"+addr+"/", strings.NewReader(strings.Repeat("x", n)))
		req.Host = host
		res, err := newClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	p := start(t, "http", b.port(), "--listen", "127.0.0.1:0", "--max-body-bytes", "1KiB", "--log-format", "json")
	addr := p.addr("127.0.0.1:0")
	if code := post(addr, "", 1000); code != 200 {
		t.Errorf("1000 bytes under --max-body-bytes 1KiB: %d", code)
	}
	if code := post(addr, "", 2000); code != 413 {
		t.Errorf("2000 bytes over --max-body-bytes 1KiB: %d, want 413", code)
	}

	cfg := writeConfig(t, t.TempDir(), fmt.Sprintf(`
log: {format: json}
limits: {max_body_bytes: 1KiB}
endpoints:
  - url: http://small.test
    listen: 127.0.0.1:0
    upstream: %[1]s
  - url: http://big.test
    listen: 127.0.0.1:0
    upstream: %[1]s
    limits: {max_body_bytes: 4KiB}
`, b.port()))
	p = start(t, "serve", "-c", cfg)
	addr = p.addr("127.0.0.1:0")
	if code := post(addr, "small.test", 2000); code != 413 {
		t.Errorf("small.test 2000 bytes: %d, want 413", code)
	}
	if code := post(addr, "big.test", 2000); code != 200 {
		t.Errorf("big.test 2000 bytes: %d, want 200", code)
	}
}

// A list of upstreams is balanced; an active health check takes a dead one
// out.
func TestLoadBalancing(t *testing.T) {
	t.Parallel()
	a, b := newBackend(t, "a"), newBackend(t, "b")
	dead := freePort(t) // nothing listens there
	cfg := writeConfig(t, t.TempDir(), fmt.Sprintf(`
log: {format: json}
endpoints:
  - url: http://:80
    listen: 127.0.0.1:0
    upstream: [%s, %s]
    load_balancing: {policy: round_robin}
  - url: http://hc.test
    listen: 127.0.0.1:0
    upstream: [%s, %s]
    load_balancing:
      health_check: {path: /health, interval: 100ms, timeout: 1s, unhealthy: 1}
`, a.port(), b.port(), a.port(), dead))
	p := start(t, "serve", "-c", cfg)
	addr := p.addr("127.0.0.1:0")
	seen := map[string]int{}
	for i := 0; i < 4; i++ {
		_, body, _ := get(t, addr, "", "/")
		seen[strings.Fields(body)[0]]++
	}
	if seen["a"] != 2 || seen["b"] != 2 {
		t.Errorf("round robin over a, b: %v", seen)
	}
	// Whatever the health checker knows yet, retries and checks keep
	// every answer coming from the live upstream.
	for i := 0; i < 4; i++ {
		if code, body, _ := get(t, addr, "hc.test", "/"); code != 200 || body != "a /" {
			t.Errorf("hc.test request %d: %d %q", i, code, body)
		}
	}
}
