package proxy

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/proxy/certs"
)

func TestValidHost(t *testing.T) {
	for _, h := range []string{"", "a", "a.example", "A.Example.", "a.example:8080", "a.example:",
		"127.0.0.1", "127.0.0.1:80", "a_b-c~d", "%41.test", "[::1]", "[::1]:8080", "[::1]:",
		"[::ffff:1.2.3.4]:80", "[2001:db8::1]"} {
		if !validHost(h) {
			t.Errorf("validHost(%q) = false, want true", h)
		}
	}
	for _, h := range []string{":", ":80", "[", "]", "[]", "[a.example]", "a.example:abc", "a,for=6.6.6.6",
		"a b", "a;b", "a=b", "a!b", "a$b", "a&b", "a'b", "a(b)", "a*b", "a+b", "a@b", "a/b", `a"b`,
		"a%", "a%4", "a%zz", "a:80:80", "[::1", "[::1]x", "[::1]:8o", "[1.2.3.4]", "[fe80::1%eth0]",
		"[fe80::1%25eth0]", "[v1.x]", "é.test", "a\x00b", "::1"} {
		if validHost(h) {
			t.Errorf("validHost(%q) = true, want false", h)
		}
	}
}

// The engine's parser refuses a bad Host (TestHostileRequests in
// cmd/sluice); net/http, the HTTP/1.x fallback, and HTTP/2 pass sub-delims
// through, so the handler refuses such a Host too, before routing.
func TestBadHostOtherPaths(t *testing.T) {
	var hits atomic.Int32
	be := backend(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	pair, pool := selfSigned(t, "app.test")
	s := start(t, Options{HTTP1Engine: EngineNetHTTP},
		EndpointConfig{URL: "https://app.test:443", TLS: []certs.Pair{pair}, Upstream: up(be.URL)},
		EndpointConfig{URL: "http://:80", Listen: "127.0.0.2:0", Upstream: up(be.URL)},
	)
	tlsAddr, plain := addr(t, s, "127.0.0.1:0"), addr(t, s, "127.0.0.2:0")

	got := raw(t, plain, "GET / HTTP/1.1\r\nHost: a,for=6.6.6.6\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 400") || !strings.Contains(got, "malformed Host header (request id ") ||
		!strings.Contains(got, "Connection: close") {
		t.Errorf("net/http engine: %q", got)
	}

	c := h2Client(pool, "app.test")
	defer c.CloseIdleConnections()
	for _, h := range []string{"a,for=6.6.6.6", "app.test;x=1", "[app.test]"} {
		req, _ := http.NewRequest("GET", "https://"+tlsAddr+"/", nil)
		req.Host = h
		res, err := c.Do(req)
		if err != nil {
			t.Fatalf("h2 %q: %v", h, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.ProtoMajor != 2 || res.StatusCode != 400 || !strings.Contains(string(b), "malformed Host header") {
			t.Errorf("h2 %q: %s %d %q", h, res.Proto, res.StatusCode, b)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the upstream saw %d requests with a bad Host", n)
	}

	// Valid hosts still route as before.
	for _, h := range []string{"app.test", "APP.test:443", "[::1]:443"} {
		req, _ := http.NewRequest("GET", "https://"+tlsAddr+"/", nil)
		req.Host = h
		res, err := c.Do(req)
		if err != nil {
			t.Fatalf("h2 %q: %v", h, err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("h2 %q: %d", h, res.StatusCode)
		}
	}
}
