package e2e

// Every built-in action through the real listener: request-phase changes
// as the upstream sees them, response-phase changes as the client sees
// them.

import (
	"testing"
)

// actionCase is one policy, one request and its outcome.
type actionCase struct {
	name   string
	policy string
	req    request // URL defaults to http://app.test/
	from   string  // local loopback IP to connect from ("" = 127.0.0.1)
	want   expect
}

func runActionCases(t *testing.T, cases []actionCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := start(t, ep{URL: "http://app.test", Policy: c.policy})
			q := c.req
			if q.URL == "" {
				q.URL = "http://app.test/"
			}
			before := e.back.hits.Load()
			r := send(t, e.clientFrom(c.from), q)
			check(t, e, r, before, c.want)
		})
	}
}

func TestAddHeaders(t *testing.T) {
	runActionCases(t, []actionCase{
		{name: "request header reaches the upstream, interpolated",
			policy: `
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            x-path: ${req.url.path}
            x-static: hello
`,
			req:  request{URL: "http://app.test/a/b?q=1"},
			want: expect{Status: 200, UpHeaders: hdr("x-path", "/a/b", "x-static", "hello"), Absent: []string{"x-path"}}},
		{name: "an existing request header gets one more value",
			policy: `
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            x-tag: second
`,
			req:  request{Header: []string{"X-Tag", "first"}},
			want: expect{Status: 200, UpValues: map[string][]string{"X-Tag": {"first", "second"}}}},
		{name: "a client's Connection cannot strip what a policy adds",
			policy: `
on_http_request:
  - actions:
      - type: remove-headers
        config:
          headers: [x-user]
      - type: add-headers
        config:
          headers:
            x-user: anonymous
            x-client: ${conn.client_ip}
`,
			// X-User and X-Client are hop-by-hop for this client; the
			// policy's own fields are not.
			req:  request{Header: []string{"X-User", "admin", "Connection", "X-User, X-Client"}},
			want: expect{Status: 200, UpValues: map[string][]string{"X-User": {"anonymous"}, "X-Client": {"127.0.0.1"}}}},
		{name: "host replaces what the upstream sees",
			policy: `
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            host: backend.example
`,
			want: expect{Status: 200, UpHost: "backend.example"}},
		{name: "response header reaches the client, numbers accepted",
			policy: `
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers:
            x-num: 1
            x-status: ${res.status_code}
`,
			want: expect{Status: 200, Headers: hdr("x-num", "1", "x-status", "200", "x-upstream", "echo"),
				UpAbsent: []string{"x-num"}}},
	})
}

func TestRemoveHeaders(t *testing.T) {
	runActionCases(t, []actionCase{
		{name: "request headers never reach the upstream",
			policy: `
on_http_request:
  - actions:
      - type: remove-headers
        config:
          headers: [x-secret, Cookie]
`,
			req:  request{Header: []string{"X-Secret", "s3cr3t", "x-secret", "again", "Cookie", "a=b", "X-Keep", "k"}},
			want: expect{Status: 200, UpAbsent: []string{"X-Secret", "Cookie"}, UpHeaders: hdr("x-keep", "k")}},
		{name: "response headers never reach the client",
			policy: `
on_http_response:
  - actions:
      - type: remove-headers
        config:
          headers: [X-UPSTREAM]
`,
			want: expect{Status: 200, Absent: []string{"X-Upstream"}, Headers: hdr("content-type", "application/json")}},
	})
}

func TestURLRewrite(t *testing.T) {
	runActionCases(t, []actionCase{
		{name: "path groups; the client is not redirected",
			policy: `
on_http_request:
  - expressions:
      - req.url.path.startsWith('/api/')
    actions:
      - type: url-rewrite
        config:
          from: /api/(v[0-9]+)/
          to: /$1/
`,
			req:  request{URL: "http://app.test/api/v2/users?page=3"},
			want: expect{Status: 200, UpURI: "/v2/users?page=3", UpHost: "app.test"}},
		{name: "query from interpolation",
			policy: `
on_http_request:
  - actions:
      - type: url-rewrite
        config:
          from: /profile/([a-z]+)
          to: /users?name=$1&via=${req.method}
`,
			req:  request{URL: "http://app.test/profile/ann"},
			want: expect{Status: 200, UpURI: "/users?name=ann&via=GET"}},
		{name: "no match leaves the URL alone",
			policy: `
on_http_request:
  - actions:
      - type: url-rewrite
        config:
          from: /nomatch/
          to: /other/
`,
			req:  request{URL: "http://app.test/keep/me?x=1"},
			want: expect{Status: 200, UpURI: "/keep/me?x=1"}},
		{name: "host may change",
			policy: `
on_http_request:
  - actions:
      - type: url-rewrite
        config:
          from: ://app.test/
          to: ://rewritten.test/
`,
			req:  request{URL: "http://app.test/x"},
			want: expect{Status: 200, UpHost: "rewritten.test", UpURI: "/x"}},
	})
}

func TestRedirect(t *testing.T) {
	runActionCases(t, []actionCase{
		{name: "status, groups and headers",
			policy: `
on_http_request:
  - actions:
      - type: redirect
        config:
          from: ^http://app.test/old/(.*)$
          to: https://app.test/new/$1
          status_code: 301
          headers:
            x-redirected-by: sluice
`,
			req: request{URL: "http://app.test/old/page?x=1"},
			want: expect{Status: 301, NoUpstream: true,
				Headers: hdr("location", "https://app.test/new/page?x=1", "x-redirected-by", "sluice")}},
		{name: "default 302, interpolated",
			policy: `
on_http_request:
  - expressions:
      - req.url.path == '/me'
    actions:
      - type: redirect
        config:
          to: /users/${req.url.query_params['id'][0]}
`,
			req:  request{URL: "http://app.test/me?id=42"},
			want: expect{Status: 302, NoUpstream: true, Headers: hdr("location", "http://app.test/users/42")}},
		{name: "no match passes to the upstream",
			policy: `
on_http_request:
  - actions:
      - type: redirect
        config:
          from: ^https://
          to: http://
`,
			req:  request{URL: "http://app.test/stay"},
			want: expect{Status: 200, UpURI: "/stay"}},
	})
}

func TestCustomResponse(t *testing.T) {
	runActionCases(t, []actionCase{
		{name: "request phase answers without the upstream",
			policy: `
on_http_request:
  - expressions:
      - req.url.path == '/teapot'
    actions:
      - type: custom-response
        config:
          status_code: 418
          headers:
            content-type: text/plain
            x-method: ${req.method}
          body: I am a teapot at ${req.url.path}
`,
			req: request{Method: "POST", URL: "http://app.test/teapot", Body: "ignored"},
			want: expect{Status: 418, NoUpstream: true, Body: str("I am a teapot at /teapot"),
				Headers: hdr("content-type", "text/plain", "x-method", "POST")}},
		{name: "json content type inferred",
			policy: `
on_http_request:
  - actions:
      - type: custom-response
        config:
          body: '{"ok":true}'
`,
			want: expect{Status: 200, NoUpstream: true, Body: str(`{"ok":true}`), Headers: hdr("content-type", "application/json")}},
		{name: "response phase replaces the upstream's answer",
			policy: `
on_http_response:
  - expressions:
      - res.status_code == 200
    actions:
      - type: custom-response
        config:
          status_code: 503
          body: replaced
`,
			want: expect{Status: 503, Upstream: true, Body: str("replaced"), Absent: []string{"x-upstream"}}},
	})
}

func TestDeny(t *testing.T) {
	runActionCases(t, []actionCase{
		{name: "default 403 with an empty body",
			policy: `
on_http_request:
  - actions:
      - type: deny
`,
			want: expect{Status: 403, NoUpstream: true, Body: str("")}},
		{name: "status code, selected by path",
			policy: `
on_http_request:
  - expressions:
      - req.url.path.startsWith('/.git')
    actions:
      - type: deny
        config:
          status_code: 404
`,
			req:  request{URL: "http://app.test/.git/config"},
			want: expect{Status: 404, NoUpstream: true}},
		{name: "other paths pass",
			policy: `
on_http_request:
  - expressions:
      - req.url.path.startsWith('/.git')
    actions:
      - type: deny
        config:
          status_code: 404
`,
			req:  request{URL: "http://app.test/src/main.go"},
			want: expect{Status: 200, UpURI: "/src/main.go"}},
		{name: "terminating: later actions and rules do not run",
			policy: `
on_http_request:
  - actions:
      - type: deny
        config:
          status_code: 401
      - type: custom-response
        config:
          status_code: 200
          body: not me
  - actions:
      - type: custom-response
        config:
          status_code: 200
          body: nor me
`,
			want: expect{Status: 401, NoUpstream: true, Body: str("")}},
	})
}

func TestCloseConnection(t *testing.T) {
	runActionCases(t, []actionCase{
		{name: "request phase: no answer",
			policy: `
on_http_request:
  - expressions:
      - req.url.path.startsWith('/dc')
    actions:
      - type: close-connection
`,
			req:  request{URL: "http://app.test/dc/now"},
			want: expect{Closed: true, NoUpstream: true}},
		{name: "tcp connect: no answer",
			policy: `
on_tcp_connect:
  - actions:
      - type: close-connection
`,
			want: expect{Closed: true, NoUpstream: true}},
		{name: "other paths pass",
			policy: `
on_http_request:
  - expressions:
      - req.url.path.startsWith('/dc')
    actions:
      - type: close-connection
`,
			req:  request{URL: "http://app.test/ok"},
			want: expect{Status: 200}},
	})
}

// A path rule cannot be walked around with dot segments, encoded dots or
// doubled slashes, which most upstreams resolve to the same path: policies
// see the normalized path. The upstream gets the path as sent, unless a
// policy rewrote it.
func TestPathNormalizedForPolicies(t *testing.T) {
	const deny = `
on_http_request:
  - expressions: ["req.url.path.startsWith('/admin')"]
    actions:
      - type: deny
        config: {status_code: 403}
`
	var cases []actionCase
	for _, p := range []string{"/admin", "/./admin", "/x/../admin", "/%2e/admin", "/%2E%2e/admin/x", "//admin", "/x/..//admin/"} {
		cases = append(cases, actionCase{name: "denied " + p, policy: deny,
			req: request{URL: "http://app.test" + p}, want: expect{Status: 403, NoUpstream: true}})
	}
	cases = append(cases,
		actionCase{name: "the upstream gets the path as sent", policy: deny,
			req: request{URL: "http://app.test/a/./b//c?q=1"}, want: expect{Status: 200, UpURI: "/a/./b//c?q=1"}},
		actionCase{name: "a policy sees and rewrites the normalized path",
			policy: `
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers: {x-path: "${req.url.path}"}
      - type: url-rewrite
        config: {from: "/b/c", to: "/z"}
`,
			req: request{URL: "http://app.test/a/./b//c"}, want: expect{Status: 200, UpURI: "/a/z", UpHeaders: hdr("x-path", "/a/b/c")}},
	)
	runActionCases(t, cases)
}
