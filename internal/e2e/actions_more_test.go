package e2e

// Built-in actions through the listener, continued: restrict-ips, log,
// set-vars, answers made in the request phase, on_error.

import (
	"strings"
	"testing"
)

func TestRestrictIPs(t *testing.T) {
	const httpPolicy = `
on_http_request:
  - actions:
      - type: restrict-ips
        config:
          allow: [127.0.0.0/8]
          deny: [127.0.0.66/32]
`
	const tcpPolicy = `
on_tcp_connect:
  - actions:
      - type: restrict-ips
        config:
          allow: [127.0.0.0/8]
          deny: [127.0.0.66/32]
`
	runActionCases(t, []actionCase{
		{name: "http allowed", policy: httpPolicy, from: "127.0.0.1", want: expect{Status: 200}},
		{name: "http denied gets 403", policy: httpPolicy, from: "127.0.0.66", want: expect{Status: 403, NoUpstream: true}},
		{name: "tcp allowed", policy: tcpPolicy, from: "127.0.0.1", want: expect{Status: 200}},
		{name: "tcp denied is closed", policy: tcpPolicy, from: "127.0.0.66", want: expect{Closed: true, NoUpstream: true}},
		{name: "not in allow list",
			policy: `
on_http_request:
  - actions:
      - type: restrict-ips
        config:
          allow: [10.0.0.0/8]
`,
			want: expect{Status: 403, NoUpstream: true}},
		{name: "dry run records the decision for later rules",
			policy: `
on_http_request:
  - actions:
      - type: restrict-ips
        config:
          enforce: false
          deny: [127.0.0.0/8]
      - type: add-headers
        config:
          headers:
            x-decision: ${actions.ngrok.restrict_ips.action}
            x-cidr: ${actions.ngrok.restrict_ips.matched_cidr}
`,
			want: expect{Status: 200, UpHeaders: hdr("x-decision", "deny", "x-cidr", "127.0.0.0/8")}},
	})
}

func TestLogAction(t *testing.T) {
	runActionCases(t, []actionCase{
		{name: "metadata interpolated into one line",
			policy: `
on_http_request:
  - actions:
      - type: log
        config:
          metadata:
            message: e2e-log-request
            path: ${req.url.path}
on_http_response:
  - actions:
      - type: log
        config:
          metadata:
            message: e2e-log-response
            status: ${res.status_code}
`,
			req:  request{URL: "http://app.test/logged/path"},
			want: expect{Status: 200, Log: "path=/logged/path"}},
	})
	t.Run("both phases logged", func(t *testing.T) {
		e := start(t, ep{URL: "http://app.test", Policy: `
on_tcp_connect:
  - actions:
      - type: log
        config:
          metadata: {message: e2e-log-connect, client: "${conn.client_ip}"}
on_http_response:
  - actions:
      - type: log
        config:
          metadata: {message: e2e-log-response, status: "${res.status_code}"}
`})
		r := get(t, e.client(), "http://app.test/")
		check(t, e, r, 0, expect{Status: 200})
		logs := e.logs.String()
		for _, want := range []string{"e2e-log-connect", "client=127.0.0.1", "e2e-log-response", "status=200"} {
			if !strings.Contains(logs, want) {
				t.Errorf("logs lack %q:\n%s", want, logs)
			}
		}
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, "e2e-log-response") && strings.Count(line, "request_id=") != 1 {
				t.Errorf("the response's log line has its request id %d times, want once: %s", strings.Count(line, "request_id="), line)
			}
		}
	})
}

func TestSetVars(t *testing.T) {
	runActionCases(t, []actionCase{
		{name: "a later rule selects on and interpolates vars",
			policy: `
on_http_request:
  - actions:
      - type: set-vars
        config:
          vars:
            - tier: gold
            - limit: ${size(req.url.path) * 2}
            - who: ${req.headers['x-user'][0]}
  - expressions:
      - vars.tier == 'gold' && vars.limit == 8
    actions:
      - type: add-headers
        config:
          headers:
            x-greeting: hello ${vars.who}, limit ${vars.limit}
on_http_response:
  - expressions:
      - vars.tier == 'gold'
    actions:
      - type: add-headers
        config:
          headers:
            x-tier: ${vars.tier}
`,
			req:  request{URL: "http://app.test/abc", Header: []string{"X-User", "ann"}},
			want: expect{Status: 200, UpHeaders: hdr("x-greeting", "hello ann, limit 8"), Headers: hdr("x-tier", "gold")}},
		{name: "connection vars reach requests",
			policy: `
on_tcp_connect:
  - actions:
      - type: set-vars
        config:
          vars:
            - port_seen: ${conn.server_port > 0}
on_http_request:
  - expressions:
      - vars.port_seen
    actions:
      - type: custom-response
        config:
          body: from connect
`,
			want: expect{Status: 200, NoUpstream: true, Body: str("from connect")}},
	})
}

// TestResponseOfRequestPhasePassesResponsePhase: an answer made in
// on_http_request (custom-response, deny, redirect) still runs through
// on_http_response, as in ngrok.
func TestResponseOfRequestPhasePassesResponsePhase(t *testing.T) {
	const resp = `
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers:
            x-response-phase: ran ${res.status_code}
`
	runActionCases(t, []actionCase{
		{name: "custom-response", policy: `
on_http_request:
  - actions:
      - type: custom-response
        config: {status_code: 202, body: made here}
` + resp, want: expect{Status: 202, NoUpstream: true, Body: str("made here"), Headers: hdr("x-response-phase", "ran 202")}},
		{name: "deny", policy: `
on_http_request:
  - actions:
      - type: deny
` + resp, want: expect{Status: 403, NoUpstream: true, Headers: hdr("x-response-phase", "ran 403")}},
		{name: "redirect", policy: `
on_http_request:
  - actions:
      - type: redirect
        config: {to: /elsewhere}
` + resp, want: expect{Status: 302, NoUpstream: true, Headers: hdr("x-response-phase", "ran 302", "location", "http://app.test/elsewhere")}},
		{name: "restrict-ips", policy: `
on_http_request:
  - actions:
      - type: restrict-ips
        config: {deny: [127.0.0.0/8]}
` + resp, want: expect{Status: 403, NoUpstream: true, Headers: hdr("x-response-phase", "ran 403")}},
		{name: "compressed too", policy: `
on_http_request:
  - actions:
      - type: custom-response
        config:
          headers: {content-type: text/plain}
          body: '` + strings.Repeat("made in the request phase; ", 60) + `'
on_http_response:
  - actions:
      - type: compress-response
`, req: request{Header: []string{"Accept-Encoding", "gzip"}},
			want: expect{Status: 200, NoUpstream: true, Headers: hdr("content-encoding", "gzip"),
				BodyContains: "made in the request phase; made in"}},
	})
}

func TestOnErrorContinue(t *testing.T) {
	runActionCases(t, []actionCase{
		{name: "a failing action with continue lets the next one run",
			policy: `
on_http_request:
  - actions:
      - type: add-headers
        config:
          on_error: continue
          headers:
            x-bad: ${req.url.query_params['v'][0]}
      - type: add-headers
        config:
          headers:
            x-after: ran
`,
			req:  request{URL: "http://app.test/?v=a%0Ab"},
			want: expect{Status: 200, UpHeaders: hdr("x-after", "ran"), UpAbsent: []string{"x-bad"}}},
		{name: "halt answers 500",
			policy: `
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            x-bad: ${req.url.query_params['v'][0]}
`,
			req:  request{URL: "http://app.test/?v=a%0Ab"},
			want: expect{Status: 500, NoUpstream: true}},
	})
}
