package e2e

// The same policies over HTTP/2: TLS with ALPN h2, and h2c with prior
// knowledge. The proxy maps both onto the same exchange, so the outcome
// must not depend on the client's protocol.

import (
	"strings"
	"testing"
)

const h2Policy = `
on_http_request:
  - expressions:
      - req.url.path == '/deny'
    actions:
      - type: deny
        config: {status_code: 451}
  - expressions:
      - req.url.path == '/made'
    actions:
      - type: custom-response
        config:
          headers: {content-type: text/plain}
          body: made over ${req.version}
  - expressions:
      - req.url.path == '/dc'
    actions:
      - type: close-connection
  - actions:
      - type: add-headers
        config:
          headers: {x-version: "${req.version}"}
      - type: url-rewrite
        config:
          from: /old/
          to: /new/
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers: {x-res-phase: "${res.status_code}"}
      - type: compress-response
        config: {algorithms: [br, gzip]}
`

func TestPoliciesOverHTTP2(t *testing.T) {
	for _, scheme := range []string{"https", "http"} {
		t.Run(scheme, func(t *testing.T) {
			e := start(t, ep{URL: scheme + "://app.test", Policy: h2Policy})
			c := e.clientH2()
			base := scheme + "://app.test"

			r := get(t, c, base+"/old/thing?q=1")
			check(t, e, r, 0, expect{Status: 200, UpURI: "/new/thing?q=1", UpHeaders: hdr("x-version", "HTTP/2.0"),
				Headers: hdr("x-res-phase", "200")})
			if r.Proto != "HTTP/2.0" {
				t.Fatalf("client spoke %s, want HTTP/2.0", r.Proto)
			}

			before := e.back.hits.Load()
			r = get(t, c, base+"/deny")
			check(t, e, r, before, expect{Status: 451, NoUpstream: true, Headers: hdr("x-res-phase", "451")})

			r = get(t, c, base+"/made", "Accept-Encoding", "br")
			body := "made over HTTP/2.0"
			check(t, e, r, before, expect{Status: 200, NoUpstream: true, Body: &body, Headers: hdr("x-res-phase", "200")})

			big := strings.Repeat("x", 4096)
			r = send(t, c, request{Method: "POST", URL: base + "/echo", Body: big, Header: []string{"Accept-Encoding", "gzip"}})
			check(t, e, r, 0, expect{Status: 200, Headers: hdr("content-encoding", "gzip")})
			if s := r.seen(t); s.Body != big {
				t.Errorf("upstream got a %d-byte body, want %d", len(s.Body), len(big))
			}

			before = e.back.hits.Load()
			r = get(t, c, base+"/dc")
			check(t, e, r, before, expect{Closed: true, NoUpstream: true})
			// The client recovers on a new connection.
			r = get(t, c, base+"/old/again")
			check(t, e, r, 0, expect{Status: 200, UpURI: "/new/again"})
		})
	}
}
