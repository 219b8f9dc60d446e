package e2e

// on_tcp_connect through real listeners (plaintext, TLS and tcp://
// endpoints), and broken policies at start.

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/cli"
	"github.com/sluicehq/sluice/internal/testlog"
)

const denyConnect = `
on_tcp_connect:
  - expressions:
      - inCidrRange(conn.client_ip, '127.0.0.64/26')
    actions:
      - type: deny
`

// TestConnectDenyClosesWithoutAnswer: a denied connection gets no HTTP
// answer at all (not a 403), on every kind of endpoint; other clients on
// the same listener are served.
func TestConnectDenyClosesWithoutAnswer(t *testing.T) {
	e := start(t, ep{URL: "http://app.test", Policy: denyConnect})
	const req = "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
	got, _ := rawFrom(t, "127.0.0.66", e.addr(""), req)
	if got != "" {
		t.Errorf("denied client got %q; want the connection closed without a byte", got)
	}
	got, _ = rawFrom(t, "127.0.0.1", e.addr(""), req)
	if !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Errorf("allowed client got %q; want a 200", trim(got))
	}
	if e.back.hits.Load() != 1 {
		t.Errorf("upstream hit %d times, want 1 (the allowed client)", e.back.hits.Load())
	}
}

func TestConnectDenyTLS(t *testing.T) {
	e := start(t, ep{URL: "https://app.test", Policy: denyConnect})
	for _, tc := range []struct {
		from string
		ok   bool
	}{{"127.0.0.66", false}, {"127.0.0.1", true}} {
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(tc.from)}}
		c, err := tls.DialWithDialer(d, "tcp", e.addr(""), &tls.Config{ServerName: "app.test", RootCAs: e.roots})
		if !tc.ok {
			if err == nil {
				c.Close()
				t.Errorf("%s: TLS handshake succeeded; want the connection closed", tc.from)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.from, err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(c)
		c.Close()
		if !bytes.HasPrefix(b, []byte("HTTP/1.1 200 ")) {
			t.Errorf("%s: got %q, want a 200", tc.from, trim(string(b)))
		}
	}
}

func TestConnectPolicyOnTCPEndpoint(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	e := start(t, ep{URL: "tcp://127.0.0.1:1", Listen: "127.0.0.1:0", Upstream: "tcp://" + up.Addr().String(), Policy: `
on_tcp_connect:
  - actions:
      - type: restrict-ips
        config:
          deny: [127.0.0.66/32]
          allow: [127.0.0.0/8]
`})
	got, _ := rawFrom(t, "127.0.0.66", e.addr(""), "ping")
	if got != "" {
		t.Errorf("denied client got %q", got)
	}
	c, err := net.DialTimeout("tcp", e.addr(""), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Errorf("allowed client: echo %q, %v", buf, err)
	}
}

// rawFrom is rawExchange from a chosen local loopback IP.
func rawFrom(t testing.TB, from, addr, data string) (string, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	io.WriteString(c, data)
	b, err := io.ReadAll(c)
	return string(b), err
}

// brokenAtStart are policies that must not load, with the position and
// words their error must carry.
var brokenAtStart = []struct {
	name, src, want string
}{
	{"yaml syntax", "on_http_request:\n  - actions: [\n", `:\d+:\d+: `},
	{"unknown action", "on_http_request:\n  - actions:\n      - type: deny2\n", `:3:15: .*deny2`},
	{"unknown variable", "on_http_request:\n  - expressions: [\"req.nope == 'x'\"]\n    actions:\n      - type: deny\n", `:2:\d+: .*req\.nope`},
	{"CEL type error", "on_http_request:\n  - expressions: [\"req.url.path + 1\"]\n    actions:\n      - type: deny\n", `:2:\d+: .*CEL`},
	{"bad field", "on_http_request:\n  - actions:\n      - type: deny\n        config: {status: 403}\n", `:4:\d+: .*status`},
	{"bad status", "on_http_request:\n  - actions:\n      - type: deny\n        config: {status_code: 99}\n", `:4:\d+: .*status_code`},
	{"unknown phase", "on_http_requests: []\n", `:1:1: .*on_http_requests`},
	{"bad cidr", "on_tcp_connect:\n  - actions:\n      - type: restrict-ips\n        config: {allow: [10.0.0.0/33]}\n", `:4:\d+: .*10\.0\.0\.0/33`},
	{"req in on_tcp_connect", "on_tcp_connect:\n  - expressions: [\"req.method == 'GET'\"]\n    actions:\n      - type: deny\n", `:2:\d+: .*req\.method.*on_tcp_connect`},
	{"res in on_http_request", "on_http_request:\n  - expressions: [\"res.status_code == 200\"]\n    actions:\n      - type: deny\n", `:2:\d+: .*res\.status_code.*on_http_request`},
	{"action in the wrong phase", "on_http_response:\n  - actions:\n      - type: url-rewrite\n        config: {from: a, to: b}\n", `:3:15: .*url-rewrite.*on_http_response`},
	{"response action in the request phase", "on_http_request:\n  - actions:\n      - type: compress-response\n", `:3:15: .*compress-response`},
	{"http action on connect", "on_tcp_connect:\n  - actions:\n      - type: custom-response\n        config: {body: x}\n", `:3:15: .*custom-response.*on_tcp_connect`},
	{"bad interpolation", "on_http_request:\n  - actions:\n      - type: add-headers\n        config:\n          headers: {x-a: \"${req.url.path\"}\n", `:5:\d+: `},
	{"bad regexp", "on_http_request:\n  - actions:\n      - type: url-rewrite\n        config: {from: \"(\", to: /}\n", `:4:\d+: .*from`},
}

// TestBrokenPolicyAtStart: a policy file that does not load is an error
// naming file:line:col, whether loaded as a handle or by the binary's
// `policy validate` and `http` commands (which must exit, not serve).
func TestBrokenPolicyAtStart(t *testing.T) {
	for _, tc := range brokenAtStart {
		t.Run(tc.name, func(t *testing.T) {
			err := loadPolicy(t, "bad.yaml", tc.src)
			if err == nil {
				t.Fatal("loaded; want an error")
			}
			if !regexp.MustCompile(`bad\.yaml` + tc.want).MatchString(err.Error()) {
				t.Errorf("error %q does not match bad.yaml%s", err, tc.want)
			}

			path := filepath.Join(t.TempDir(), "bad.yaml")
			writeFile(t, path, tc.src)
			code, stdout, stderr := runCLI(t, "policy", "validate", path)
			if code != 1 || !regexp.MustCompile(regexp.QuoteMeta(path)+tc.want).MatchString(stdout+stderr) {
				t.Errorf("sluice policy validate: exit %d, output %q; want 1 and %s%s", code, stdout+stderr, path, tc.want)
			}
			code, stdout, stderr = runCLI(t, "http", "127.0.0.1:1", "--listen", "127.0.0.1:0", "--traffic-policy-file", path)
			if code == 0 || !strings.Contains(stdout+stderr, "bad.yaml:") {
				t.Errorf("sluice http with a broken policy: exit %d, output %q; want a failure naming the file", code, stdout+stderr)
			}
		})
	}
}

// runCLI runs the sluice command line in process; it must return within
// 10 s (a broken policy must stop it before it serves).
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb testlog.Buffer
	done := make(chan int, 1)
	go func() { done <- cli.Main(args, &out, &errb) }()
	select {
	case code := <-done:
		return code, out.String(), errb.String()
	case <-time.After(10 * time.Second):
		t.Fatalf("sluice %s did not exit within 10s; stderr %q", strings.Join(args, " "), errb.String())
		return 0, "", ""
	}
}
