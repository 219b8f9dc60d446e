package actions

import (
	"bytes"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/policy"
	"go.yaml.in/yaml/v3"
)

// FuzzNegotiate: any Accept-Encoding yields "" or one of the allowed,
// producible codings, never a panic.
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=1.0, br; q=0.5, *;q=0", "*;q=0.5, gzip;q=0", ";;,;q=", "br;q=1e400"} {
		f.Add(s)
	}
	allowed := []string{"gzip", "deflate", "br", "zstd", "compress"}
	f.Fuzz(func(t *testing.T, accept string) {
		got := negotiate([]string{accept}, allowed)
		if got != "" && codings[got] == nil {
			t.Fatalf("negotiate(%q) = %q: not producible", accept, got)
		}
	})
}

// FuzzResolveURL: whatever a replacement produced, the result is either an
// error or an http(s) URL with a valid host that parses again unchanged.
func FuzzResolveURL(f *testing.F) {
	for _, s := range []string{"/a b", "https:///x", "https://new.example.com/n?q=1", "//evil.example/x", "\x00", "http://[::1]:80/", "https://example.comhttps://x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, result string) {
		u, err := resolveURL("https://example.com/old?x=1", result)
		if err != nil {
			return
		}
		if u.Scheme != "http" && u.Scheme != "https" || !validHost(u.Host) {
			t.Fatalf("resolveURL(%q) = %q", result, u)
		}
		if _, err := url.Parse(u.String()); err != nil {
			t.Fatalf("resolveURL(%q) = %q, which does not parse: %v", result, u, err)
		}
	})
}

// FuzzCompressBody: any body round-trips through every coding.
func FuzzCompressBody(f *testing.F) {
	f.Add([]byte("hello"), uint8(0))
	f.Add(bytes.Repeat([]byte("abc"), 20000), uint8(3))
	names := []string{"gzip", "deflate", "br", "zstd"}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		c := names[int(which)%len(names)]
		cb := newCompressBody(io.NopCloser(bytes.NewReader(data)), c)
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, cb); err != nil {
			t.Fatal(err)
		}
		cb.Close()
		got, err := io.ReadAll(decoder(t, c, &buf))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s round trip: %v, %d of %d bytes", c, err, len(got), len(data))
		}
	})
}

// FuzzParseCIDR: accepted input yields a masked prefix.
func FuzzParseCIDR(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "::ffff:10.0.0.0/104", "1.1.1.1", "fe80::1%eth0", "2001:db8::/129"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseCIDR(s)
		if err != nil {
			return
		}
		if p != p.Masked() || !p.IsValid() {
			t.Fatalf("parseCIDR(%q) = %v", s, p)
		}
		if strings.Contains(p.String(), "%") {
			t.Fatalf("zone kept: %v", p)
		}
	})
}

// FuzzActionConfig feeds arbitrary YAML to every action's constructor and
// runs what loads against a request: bad config must be an error, never a
// panic (the engine would contain it, but it would still be a bug here).
func FuzzActionConfig(f *testing.F) {
	seeds := []string{
		`headers: {x-a: "${conn.client_ip}"}`, `headers: [a, b]`, `{from: "(a)", to: "$1"}`,
		`{status_code: 301, to: /x, headers: {a: 1}}`, `{body: "${req.url.path}", status_code: 503}`,
		`{allow: [10.0.0.0/8], deny: ["${'1.2.3.4'}"], enforce: false}`,
		`{name: n, algorithm: sliding_window, capacity: 2, rate: 60s, bucket_key: [req.host]}`,
		`metadata: {a: [1, {b: "${req.method}"}]}`, `vars: [{a: 1}, {b: "${vars.a}"}]`,
		`url: https://x.internal`, `algorithms: [gzip, br]`,
		`{credentials: ["u:password1", "${'a'}:${'b'}"], realm: r, enforce: false}`, `~`, `[]`, `status_code: -1`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), s)
	}
	types := []string{"add-headers", "remove-headers", "url-rewrite", "redirect", "custom-response", "deny",
		"close-connection", "restrict-ips", "rate-limit", "log", "set-vars", "forward-internal", "compress-response",
		"basic-auth"}
	f.Fuzz(func(t *testing.T, which uint8, config string) {
		typ := types[int(which)%len(types)]
		var doc yaml.Node
		if yaml.Unmarshal([]byte(config), &doc) != nil || len(doc.Content) == 0 {
			return
		}
		spec, _ := policy.Lookup(typ)
		phase := policy.OnHTTPRequest
		if typ == "compress-response" {
			phase = policy.OnHTTPResponse
		}
		c := &policy.Config{Type: typ, Phase: phase, Node: doc.Content[0]}
		a, err := spec.New(c)
		if err != nil {
			return
		}
		if cl, ok := a.(policy.Closer); ok {
			defer cl.Close()
		}
		s := newState(t, policy.OnHTTPRequest, "GET", "https://example.com/a/b?c=d", "192.0.2.1:1", "Accept-Encoding", "gzip")
		if phase == policy.OnHTTPResponse {
			withResponse(s, 200, strings.Repeat("x", 2000))
		}
		_ = a.Run(s) // errors are fine; panics are not
		if s.X.Res != nil && s.X.Res.Body != nil {
			io.Copy(io.Discard, s.X.Res.Body)
			s.X.Res.Body.Close()
		}
	})
}
