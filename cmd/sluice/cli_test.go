package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/testcert"
)

// Commands that end at once: usage, version, argument errors.
func TestCommandLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
	}{
		{"no args", nil, 2, "", "Usage:"},
		{"help", []string{"help"}, 0, "sluice serve", ""},
		{"help http", []string{"help", "http"}, 0, "", "--traffic-policy-file"},
		{"http -h", []string{"http", "-h"}, 0, "", "Usage: sluice http <upstream>"},
		{"version", []string{"version"}, 0, "sluice v0.0.0-e2e (" + runtime.Version(), ""},
		{"unknown command", []string{"htp", "9000"}, 2, "", `unknown command "htp"`},
		{"unknown flag", []string{"http", "9000", "--lissen", ":1"}, 2, "", "flag provided but not defined: -lissen"},
		{"missing upstream", []string{"http"}, 2, "", "missing <upstream>"},
		{"two upstreams", []string{"tcp", "1", "2"}, 2, "", "one <upstream> expected"},
		{"bad upstream", []string{"http", "gopher://x"}, 1, "", `unsupported upstream scheme "gopher"`},
		{"tunnels", []string{"http", "9000", "--server", "edge:4443", "--authtoken", "x"}, 2, "", "tunnels are not available in this build yet"},
		{"pooling", []string{"http", "9000", "--pooling-enabled"}, 2, "", "tunnels are not available in this build yet"},
		{"geoip", []string{"http", "9000", "--geoip-db", "a.mmdb"}, 2, "", "GeoIP databases are not available in this build yet"},
		{"bad log format", []string{"http", "9000", "--log-format", "xml"}, 1, "", "--log-format"},
		{"bad trusted proxies", []string{"http", "9000", "--trusted-proxies", "10.0.0.0/99"}, 1, "", "--trusted-proxies"},
		{"https url without cert", []string{"http", "9000", "--url", "https://a.example.com"}, 1, "", "needs --tls-cert and --tls-key"},
		{"bad duration flag", []string{"http", "9000", "--dial-timeout", "soon"}, 2, "", "want a duration"},
		{"serve positional", []string{"serve", "sluice.yaml"}, 2, "", "goes after -c"},
		{"serve missing file", []string{"serve", "-c", "/nonexistent/sluice.yaml"}, 1, "", "no such file"},
		{"policy no sub", []string{"policy"}, 2, "", "Usage: sluice policy validate"},
		{"policy bad sub", []string{"policy", "check", "x"}, 2, "", `unknown subcommand "check"`},
		{"policy no files", []string{"policy", "validate"}, 2, "", "no files given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runSluice(t, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errOut, tc.stderr) {
				t.Errorf("sluice %q: exit %d (want %d)\nstdout: %s\nstderr: %s\nwant stdout ~ %q, stderr ~ %q",
					tc.args, code, tc.code, out, errOut, tc.stdout, tc.stderr)
			}
		})
	}
}

// A config error stops `serve` at start with FILE:LINE:COL.
func TestServeConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, tc := range map[string]struct{ src, want string }{
		"unknown key": {"endpoints:\n  - url: http://:1\n    upstream: 1\n    upstreams: 2\n", `bad.yaml:4:5: unknown key "upstreams" in endpoints[0]`},
		"wrong type":  {"limits:\n  max_body_bytes: [1]\nendpoints: [{url: 'http://:1', upstream: 1}]\n", "bad.yaml:2:19: limits.max_body_bytes: want a single value"},
		"unset env":   {"endpoints: [{url: 'http://:1', upstream: '${SLUICE_E2E_UNSET}'}]\n", "environment variable SLUICE_E2E_UNSET is not set"},
		"no policy file": {"endpoints:\n  - url: http://:1\n    upstream: 1\n    traffic_policy_file: missing.yaml\n",
			"bad.yaml:2:5: endpoints[0].traffic_policy_file: policy: open"},
		"access log dir": {"log: {access_log: /nonexistent/dir/a.log}\nendpoints: [{url: 'http://:1', upstream: 1}]\n",
			"bad.yaml: log.access_log: open /nonexistent/dir/a.log"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "bad.yaml")
			_ = os.Remove(path)
			if err := os.WriteFile(path, []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			code, _, errOut := runSluice(t, "serve", "-c", path)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, errOut, tc.want)
			}
		})
	}
}

// serve --check loads policies and certificates without listening.
func TestServeCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := testcert.Generate(t, dir, "app.test")
	os.WriteFile(filepath.Join(dir, "good.yaml"), []byte("on_http_request: []\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("on_http_request:\n  - actions: [{type: nope}]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "junk.crt"), []byte("not a certificate"), 0o644)
	good := fmt.Sprintf("endpoints:\n  - url: https://app.test:1\n    tls: {cert: %s, key: %s}\n    upstream: 1\n    traffic_policy_file: good.yaml\n", cert, key)
	path := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(path, []byte(good), 0o644)
	code, out, errOut := runSluice(t, "serve", "-c", path, "--check")
	if code != 0 || out != path+": ok\n" {
		t.Errorf("good config: exit %d, %q %q", code, out, errOut)
	}
	bad := fmt.Sprintf("endpoints:\n  - url: https://app.test:1\n    tls: {cert: junk.crt, key: %s}\n    upstream: 1\n    traffic_policy_file: bad.yaml\n", key)
	os.WriteFile(path, []byte(bad), 0o644)
	code, out, _ = runSluice(t, "serve", "-c", path, "--check")
	if code != 1 || !strings.Contains(out, "sluice.yaml:2:5: endpoints[0].tls: certs:") || !strings.Contains(out, "junk.crt") || !strings.Contains(out, "bad.yaml:2:") {
		t.Errorf("bad config: exit %d, %q", code, out)
	}
	// What a start would refuse, --check refuses too, where the file says it.
	for _, tc := range []struct{ src, want string }{
		{"endpoints:\n  - url: http://:1\n    upstream: 1\n    traffic_policy_file: missing.yaml\n",
			"sluice.yaml:2:5: endpoints[0].traffic_policy_file: policy: open"},
		{"log: {access_log: /nonexistent/dir/a.log}\nendpoints: [{url: 'http://:1', upstream: 1}]\n",
			"sluice.yaml: log.access_log: open /nonexistent/dir/a.log"},
		{"endpoints:\n  - url: http://:1\n    upstream: 1\n    load_balancing: {passive: {max_fails: -2}}\n",
			"sluice.yaml:4:43: endpoints[0].load_balancing.passive.max_fails: want a whole number"},
		{"endpoints:\n  - url: http://:1\n    upstream: 1\n    load_balancing: {health_check: {healthy: -1}}\n",
			"sluice.yaml:4:46: endpoints[0].load_balancing.health_check.healthy: want a whole number"},
		{"endpoints:\n  - url: http://a.test:1\n    upstream: 1\n  - url: http://a.test:1\n    upstream: 2\n",
			"sluice.yaml:4:5: endpoints[1]: proxy: endpoint http://a.test:1 (listen :1): duplicate host a.test"},
		{"endpoints:\n  - url: tcp://:1\n    upstream: 127.0.0.1:2\n  - url: http://:1\n    upstream: 2\n",
			"sluice.yaml:4:5: endpoints[1]: proxy: endpoint http://:1 (listen :1): a tcp endpoint cannot share its port"},
	} {
		os.WriteFile(path, []byte(tc.src), 0o644)
		code, out, errOut := runSluice(t, "serve", "-c", path, "--check")
		if code != 1 || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("--check of\n%s: exit %d, %q %q; want 1 and %q", tc.src, code, out, errOut, tc.want)
		}
	}
}
