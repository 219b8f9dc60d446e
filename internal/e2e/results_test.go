package e2e

// Action result variables (actions.ngrok.<action>.*) read by a later
// action, and policies chosen per endpoint and per client address.

import (
	"strings"
	"testing"
)

func TestActionResultVariables(t *testing.T) {
	runActionCases(t, []actionCase{
		{name: "url_rewrite.url and matches",
			policy: `
on_http_request:
  - actions:
      - type: url-rewrite
        config:
          from: /v([0-9]+)/
          to: /version-$1/
      - type: add-headers
        config:
          headers:
            x-url: ${actions.ngrok.url_rewrite.url}
            x-match: ${actions.ngrok.url_rewrite.matches[1]}
`,
			req:  request{URL: "http://app.test/v7/items"},
			want: expect{Status: 200, UpURI: "/version-7/items", UpHeaders: hdr("x-url", "http://app.test/version-7/items", "x-match", "7")}},
		{name: "redirect.url seen in the response phase",
			policy: `
on_http_request:
  - actions:
      - type: redirect
        config:
          from: /old
          to: /new
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers:
            x-redirect-url: ${actions.ngrok.redirect.url}
`,
			req:  request{URL: "http://app.test/old"},
			want: expect{Status: 302, NoUpstream: true, Headers: hdr("location", "http://app.test/new", "x-redirect-url", "http://app.test/new")}},
		{name: "remove_headers.headers_removed",
			policy: `
on_http_request:
  - actions:
      - type: remove-headers
        config:
          headers: [x-a, x-absent]
      - type: add-headers
        config:
          headers:
            x-removed: ${actions.ngrok.remove_headers.headers_removed.join(',')}
`,
			req:  request{Header: []string{"X-A", "1"}},
			want: expect{Status: 200, UpAbsent: []string{"X-A"}, UpHeaders: hdr("x-removed", "x-a")}},
		{name: "compress.negotiated_algorithm",
			policy: `
on_http_response:
  - actions:
      - type: compress-response
      - type: add-headers
        config:
          headers:
            x-algo: ${actions.ngrok.compress.negotiated_algorithm}
            x-already: ${actions.ngrok.compress.already_compressed}
`,
			// The echo carries the header back, making the body big enough
			// (over 1 KiB) to be worth compressing.
			req:  request{Header: []string{"Accept-Encoding", "gzip", "X-Pad", strings.Repeat("p", 1500)}},
			want: expect{Status: 200, Headers: hdr("x-algo", "gzip", "x-already", "false", "content-encoding", "gzip")}},
		{name: "log.metadata",
			policy: `
on_http_request:
  - actions:
      - type: log
        config:
          metadata: {message: e2e-result, path: "${req.url.path}"}
      - type: add-headers
        config:
          headers:
            x-logged: ${actions.ngrok.log.metadata.path}
`,
			req:  request{URL: "http://app.test/logged"},
			want: expect{Status: 200, UpHeaders: hdr("x-logged", "/logged")}},
	})
}

// TestPolicyPerEndpoint: endpoints sharing one listener each run their own
// policy, chosen by Host (plaintext) or SNI (TLS).
func TestPolicyPerEndpoint(t *testing.T) {
	tag := func(name string) string {
		return `
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers: {x-policy: ` + name + `, x-endpoint: "${endpoint.url}"}
`
	}
	e := start(t,
		ep{URL: "http://a.test", Policy: tag("a")},
		ep{URL: "http://b.test", Policy: tag("b") + `
on_http_request:
  - actions:
      - type: deny
        config: {status_code: 418}
`},
		ep{URL: "https://c.test", Policy: tag("c")},
		ep{URL: "http://*.wild.test", Policy: tag("wild")},
		ep{URL: "http://any.test", Upstream: "", Policy: ""}, // no policy at all
	)
	c := e.client()
	for _, tc := range []struct {
		url, policy string
		status      int
	}{
		{"http://a.test/", "a", 200},
		{"http://b.test/", "b", 418},
		{"https://c.test/", "c", 200},
		{"http://x.wild.test/", "wild", 200},
		{"http://any.test/", "", 200},
	} {
		r := get(t, c, tc.url)
		if r.Err != nil || r.Status != tc.status || r.Header.Get("X-Policy") != tc.policy {
			t.Errorf("%s: status %d policy %q (%v); want %d and %q", tc.url, r.Status, r.Header.Get("X-Policy"), r.Err, tc.status, tc.policy)
		}
	}
}

// TestForwardedForIsNotTrustedByDefault: restrict-ips and conn.client_ip
// believe X-Forwarded-For only from trusted proxies; from anyone else it
// is just a header, so it cannot be used to slip past an allow list.
func TestForwardedForIsNotTrustedByDefault(t *testing.T) {
	const pol = `
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers: {x-client-ip: "${conn.client_ip}"}
      - type: restrict-ips
        config:
          allow: [203.0.113.0/24]
`
	t.Run("untrusted peer", func(t *testing.T) {
		e := start(t, ep{URL: "http://app.test", Policy: pol})
		r := get(t, e.client(), "http://app.test/", "X-Forwarded-For", "203.0.113.9")
		check(t, e, r, 0, expect{Status: 403, NoUpstream: true})
	})
	t.Run("trusted peer", func(t *testing.T) {
		e := startWith(t, setup{Trusted: true}, ep{URL: "http://app.test", Policy: pol})
		r := get(t, e.client(), "http://app.test/", "X-Forwarded-For", "203.0.113.9")
		check(t, e, r, 0, expect{Status: 200, UpHeaders: hdr("x-client-ip", "203.0.113.9")})
	})
}

// TestClientIPPerPhase: behind a trusted proxy, on_tcp_connect sees the TCP
// peer (no header has arrived yet) while the HTTP phases see the client
// the proxy vouched for.
func TestClientIPPerPhase(t *testing.T) {
	e := startWith(t, setup{Trusted: true}, ep{URL: "http://app.test", Policy: `
on_tcp_connect:
  - actions:
      - type: set-vars
        config:
          vars:
            - peer: ${conn.client_ip}
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers: {x-peer: "${vars.peer}", x-client: "${conn.client_ip}"}
`})
	r := get(t, e.client(), "http://app.test/", "X-Forwarded-For", "203.0.113.9")
	check(t, e, r, 0, expect{Status: 200, UpHeaders: hdr("x-peer", "127.0.0.1", "x-client", "203.0.113.9")})
}
