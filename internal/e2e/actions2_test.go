package e2e

// The actions whose outcome needs more than one request or endpoint:
// rate-limit, forward-internal, compress-response.

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func TestRateLimit(t *testing.T) {
	// The counter table is process-wide and keyed by name: a name of its
	// own keeps this test apart from every other one (and from its own
	// earlier runs under -count).
	e := start(t, ep{URL: "http://app.test", Policy: `
on_http_request:
  - actions:
      - type: rate-limit
        config:
          name: e2e per key and client ` + nonce() + `
          algorithm: sliding_window
          capacity: 3
          rate: 60s
          bucket_key:
            - req.headers['x-api-key'][0]
            - conn.client_ip
  - actions:
      - type: add-headers
        config:
          headers:
            x-bucket: ${actions.ngrok.rate_limit.bucket_key}
            x-limited: ${actions.ngrok.rate_limit.limited}
`})
	c := e.client()
	for i := 1; i <= 3; i++ {
		before := e.back.hits.Load()
		r := get(t, c, "http://app.test/", "X-Api-Key", "alpha")
		check(t, e, r, before, expect{Status: 200, UpHeaders: hdr("x-bucket", "alpha,127.0.0.1", "x-limited", "false")})
	}
	before := e.back.hits.Load()
	r := get(t, c, "http://app.test/", "X-Api-Key", "alpha")
	check(t, e, r, before, expect{Status: 429, NoUpstream: true})
	ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After %q, want seconds in 1..60", r.Header.Get("Retry-After"))
	}

	// Other buckets are untouched: another key, and the same key from
	// another client IP.
	before = e.back.hits.Load()
	r = get(t, c, "http://app.test/", "X-Api-Key", "beta")
	check(t, e, r, before, expect{Status: 200, UpHeaders: hdr("x-bucket", "beta,127.0.0.1")})
	before = e.back.hits.Load()
	r = get(t, e.clientFrom("127.0.0.7"), "http://app.test/", "X-Api-Key", "alpha")
	check(t, e, r, before, expect{Status: 200, UpHeaders: hdr("x-bucket", "alpha,127.0.0.7")})

	// Still limited: refused requests are not counted, but nor do they
	// free the bucket within the window.
	before = e.back.hits.Load()
	r = get(t, c, "http://app.test/", "X-Api-Key", "alpha")
	check(t, e, r, before, expect{Status: 429, NoUpstream: true})
}

func TestRateLimitDryRun(t *testing.T) {
	e := start(t, ep{URL: "http://app.test", Policy: `
on_http_request:
  - actions:
      - type: rate-limit
        config:
          name: e2e dry run ` + nonce() + `
          algorithm: sliding_window
          capacity: 1
          rate: 60s
          enforce: false
          bucket_key: [conn.client_ip]
      - type: add-headers
        config:
          headers:
            x-limited: ${actions.ngrok.rate_limit.limited}
`})
	c := e.client()
	check(t, e, get(t, c, "http://app.test/"), 0, expect{Status: 200, UpHeaders: hdr("x-limited", "false")})
	before := e.back.hits.Load()
	check(t, e, get(t, c, "http://app.test/"), before, expect{Status: 200, UpHeaders: hdr("x-limited", "true")})
}

// TestForwardInternal: the public endpoint hands the request to an internal
// one; the internal endpoint's own policy runs (both phases), its upstream
// answers, and the answer then passes the public endpoint's
// on_http_response.
func TestForwardInternal(t *testing.T) {
	other := newBackend(t, func(w http.ResponseWriter, r *http.Request, s *seen) {
		w.Header().Set("X-Upstream", "billing")
		w.Write([]byte("billing saw " + s.URI() + " " + s.Header.Get("X-Internal-Req")))
	})
	e := start(t,
		ep{URL: "http://app.test", Policy: `
on_http_request:
  - expressions:
      - req.url.path.startsWith('/billing/')
    actions:
      - type: add-headers
        config:
          headers: {x-public-req: yes}
      - type: forward-internal
        config:
          url: http://billing.internal
on_http_response:
  - expressions:
      - "'x-internal-res' in res.headers"
    actions:
      - type: add-headers
        config:
          headers:
            x-public-res: saw ${res.status_code} ${res.headers['x-internal-res'][0]}
`},
		ep{URL: "http://billing.internal", Upstream: other.URL, Policy: `
on_http_request:
  - actions:
      - type: url-rewrite
        config:
          from: /billing/
          to: /v2/
      - type: add-headers
        config:
          headers:
            x-internal-req: endpoint ${endpoint.url}
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers: {x-internal-res: done}
`})
	c := e.client()
	r := get(t, c, "http://app.test/billing/invoices?n=2")
	check(t, e, r, 0, expect{Status: 200, NoUpstream: true,
		Body:    str("billing saw /v2/invoices?n=2 endpoint http://billing.internal"),
		Headers: hdr("x-upstream", "billing", "x-internal-res", "done", "x-public-res", "saw 200 done")})
	if got := other.last.Load().Header.Get("X-Public-Req"); got != "yes" {
		t.Errorf("internal upstream saw x-public-req %q: the public endpoint's request changes must travel on", got)
	}

	// Other paths use the public endpoint's own upstream.
	r = get(t, c, "http://app.test/home")
	check(t, e, r, 0, expect{Status: 200, UpURI: "/home", Headers: hdr("x-upstream", "echo")})

	// Internal endpoints are not reachable directly.
	r = get(t, c, "http://billing.internal/billing/x")
	if r.Err != nil || r.Status < 400 {
		t.Errorf("a direct request to an internal endpoint got %d %v; want a 4xx/5xx", r.Status, r.Err)
	}
}

func TestForwardInternalUnknown(t *testing.T) {
	e := start(t, ep{URL: "http://app.test", Policy: `
on_http_request:
  - actions:
      - type: forward-internal
        config:
          url: http://nowhere.internal
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers: {x-seen: "${res.status_code}"}
`})
	r := get(t, e.client(), "http://app.test/")
	check(t, e, r, 0, expect{NoUpstream: true})
	if r.Status < 500 {
		t.Errorf("status %d, want a 5xx for an unknown internal endpoint", r.Status)
	}
}

// ngrok's failover pattern: forward to an internal endpoint, and when
// there is none, on_error: continue lets the next action answer.
func TestForwardInternalUnknownContinues(t *testing.T) {
	e := start(t, ep{URL: "http://app.test", Policy: `
on_http_request:
  - actions:
      - type: forward-internal
        config:
          url: https://endpoint-1.internal
          on_error: continue
      - type: custom-response
        config:
          status_code: 302
          headers:
            location: https://www.example.com
`})
	c := e.client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r := get(t, c, "http://app.test/")
	check(t, e, r, 0, expect{Status: 302, NoUpstream: true, Headers: hdr("location", "https://www.example.com")})
}

func TestCompressResponse(t *testing.T) {
	body := strings.Repeat("sluice compresses this text; ", 200)
	respond := func(w http.ResponseWriter, r *http.Request, s *seen) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write([]byte(body))
	}
	const pol = `
on_http_response:
  - actions:
      - type: compress-response
        config:
          algorithms: [zstd, br, gzip]
`
	cases := []struct {
		accept, want string
	}{
		{"gzip", "gzip"},
		{"br", "br"},
		{"zstd", "zstd"},
		{"gzip;q=0.5, br;q=0.9", "br"},
		{"gzip, br, zstd", "zstd"}, // ties go to the order of algorithms
		{"*", "zstd"},
		{"identity", ""},
		{"deflate", ""}, // not in algorithms
		{"", ""},
	}
	e := startWith(t, setup{Respond: respond}, ep{URL: "http://app.test", Policy: pol})
	c := e.client()
	for _, tc := range cases {
		t.Run("accept="+tc.accept, func(t *testing.T) {
			var h []string
			if tc.accept != "" {
				h = []string{"Accept-Encoding", tc.accept}
			}
			r := get(t, c, "http://app.test/text", h...)
			check(t, e, r, 0, expect{Status: 200, Body: &body})
			if got := r.Header.Get("Content-Encoding"); got != tc.want {
				t.Fatalf("content-encoding %q, want %q", got, tc.want)
			}
			if tc.want == "" {
				if r.Header.Get("ETag") != `"v1"` {
					t.Errorf("uncompressed ETag %q changed", r.Header.Get("ETag"))
				}
				return
			}
			if len(r.Raw) >= len(body) {
				t.Errorf("%s body is %d bytes, not smaller than %d", tc.want, len(r.Raw), len(body))
			}
			if !strings.Contains(r.Header.Get("Vary"), "Accept-Encoding") {
				t.Errorf("Vary %q lacks Accept-Encoding", r.Header.Get("Vary"))
			}
			if r.Header.Get("ETag") != `W/"v1"` {
				t.Errorf("ETag %q, want weak W/\"v1\"", r.Header.Get("ETag"))
			}
		})
	}
}
