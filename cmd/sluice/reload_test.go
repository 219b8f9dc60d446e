package main

import (
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

func simpleConfig(upstream string) string {
	return fmt.Sprintf(`
admin: 127.0.0.1:0
log: {format: json}
endpoints:
  - url: http://:80
    listen: 127.0.0.1:0
    upstream: %s
`, upstream)
}

// Rewriting the config file reloads it without cutting a request in
// flight; new requests see the new config. A broken file in between logs
// one error with file:line:col and changes nothing.
func TestReloadOnFileChange(t *testing.T) {
	t.Parallel()
	oldB, newB := newBackend(t, "old"), newBackend(t, "new")
	dir := t.TempDir()
	cfg := writeConfig(t, dir, simpleConfig(oldB.addr()))
	p := start(t, "serve", "-c", cfg)
	addr := p.addr("127.0.0.1:0")

	slow := startSlow(t, oldB, addr, "")

	// A broken file: one error line naming the position, old config stays.
	n := p.nLines()
	writeConfig(t, dir, simpleConfig(newB.addr())+"    upstreamz: 1\n")
	l, _ := p.waitLog(n, "config reload failed", msg("config reload failed; the running config stays"))
	if e, _ := l["err"].(string); !regexp.MustCompile(`sluice\.yaml:8:5: unknown key "upstreamz"`).MatchString(e) {
		t.Errorf("error lacks file:line:col: %q", e)
	}
	if code, body, _ := get(t, addr, "", "/x"); code != 200 || body != "old /x" {
		t.Errorf("after broken config: %d %q, want the old config", code, body)
	}

	// A good file is applied; the listener (same key) keeps its
	// connections.
	n = p.nLines()
	writeConfig(t, dir, simpleConfig(newB.addr()))
	p.waitLog(n, "config reloaded", msg("config reloaded"))
	if code, body, _ := get(t, addr, "", "/x"); code != 200 || body != "new /x" {
		t.Errorf("after reload: %d %q, want the new backend", code, body)
	}
	oldB.unblock()
	slow.finish(t, oldB)

	if n := p.count(msg("config reload failed; the running config stays")); n != 1 {
		t.Errorf("%d reload error lines, want exactly 1", n)
	}
	_, metrics, _ := get(t, p.adminAddr(), "", "/metrics")
	for _, want := range []string{`sluice_config_reloads_total{result="failure"} 1`, `sluice_config_reloads_total{result="success"} 1`, "sluice_config_last_reload_successful 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// SIGHUP reloads the config file (even unchanged) and the policies.
func TestReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "hup")
	cfg := writeConfig(t, t.TempDir(), simpleConfig(b.port()))
	p := start(t, "serve", "-c", cfg)
	addr := p.addr("127.0.0.1:0")
	p.waitLog(0, "started", msg("sluice started"))
	n := p.nLines()
	p.signal(syscall.SIGHUP)
	p.waitLog(n, "SIGHUP", msg("SIGHUP: reloading"))
	p.waitLog(n, "config reloaded", msg("config reloaded"))
	if code, body, _ := get(t, addr, "", "/after"); code != 200 || body != "hup /after" {
		t.Errorf("after SIGHUP: %d %q", code, body)
	}
}

// SIGTERM: readiness drops, in-flight requests finish, then exit 0.
func TestSIGTERMDrains(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "drain")
	cfg := writeConfig(t, t.TempDir(), simpleConfig(b.port()))
	p := start(t, "serve", "-c", cfg)
	addr := p.addr("127.0.0.1:0")
	p.waitLog(0, "started", msg("sluice started"))
	slow := startSlow(t, b, addr, "")

	p.signal(syscall.SIGTERM)
	p.waitLog(0, "draining", msg("draining"))
	if code, _, _ := get(t, p.adminAddr(), "", "/readyz"); code != 503 {
		t.Errorf("/readyz while draining = %d, want 503", code)
	}
	select {
	case <-p.done:
		t.Fatal("sluice exited with a request in flight")
	default:
	}
	b.unblock()
	slow.finish(t, b)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	p.waitLog(0, "stopped", msg("stopped"))
}

// A second signal during the drain closes what is left at once; the exit
// is still 0. `serve` without -c reads ./sluice.yaml.
func TestSecondSignalCutsDrain(t *testing.T) {
	t.Parallel()
	b := newBackend(t, "cut")
	dir := t.TempDir()
	writeConfig(t, dir, `
log: {format: json}
limits: {shutdown_timeout: 1h}
endpoints:
  - url: http://:80
    listen: 127.0.0.1:0
    upstream: `+b.port()+"\n")
	p := startIn(t, dir, "serve")
	addr := p.addr("127.0.0.1:0")
	p.waitLog(0, "started", msg("sluice started"))
	slow := startSlow(t, b, addr, "")
	defer slow.res.Body.Close()
	p.signal(syscall.SIGTERM)
	p.waitLog(0, "draining", msg("draining"))
	p.signal(syscall.SIGINT)
	if code := p.wait(); code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	if _, err := io.ReadAll(slow.body); err == nil {
		t.Error("the in-flight request completed; the second signal should have cut it")
	}
}

// A config reload keeps the loaded policy of an unchanged policy file, so
// its state (here a rate-limit window) survives an unrelated edit.
func TestReloadKeepsPolicyState(t *testing.T) {
	t.Parallel()
	b, b2 := newBackend(t, "rl"), newBackend(t, "rl2")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "p.yaml"), `
on_http_request:
  - actions:
      - type: rate-limit
        config:
          name: two per hour
          algorithm: sliding_window
          capacity: 2
          rate: 1h
          bucket_key: [conn.client_ip]
`)
	conf := func(up string) string {
		return fmt.Sprintf("log: {format: json}\nendpoints:\n  - url: http://:80\n    listen: 127.0.0.1:0\n    upstream: %s\n    traffic_policy_file: p.yaml\n", up)
	}
	cfg := writeConfig(t, dir, conf(b.port()))
	p := start(t, "serve", "-c", cfg)
	addr := p.addr("127.0.0.1:0")
	for i := 0; i < 2; i++ {
		if code, _, _ := get(t, addr, "", "/"); code != 200 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	n := p.nLines()
	writeConfig(t, dir, conf(b2.port()))
	p.waitLog(n, "config reloaded", msg("config reloaded"))
	if code, _, _ := get(t, addr, "", "/"); code != 429 {
		t.Errorf("third request after reload: %d, want 429 (the window survived)", code)
	}
}
