package actions

import (
	"testing"

	"github.com/sluicehq/sluice/policy"
)

func TestAddHeadersRequest(t *testing.T) {
	a := mustBuild(t, "add-headers", policy.OnHTTPRequest, `
headers:
  x-client-ip: "${conn.client_ip}"
  X-Num: 1
  x-bool: true
  x-existing: two
  host: backend.local
`)
	s := newState(t, policy.OnHTTPRequest, "GET", "https://example.com/a", "203.0.113.7:5555", "X-Existing", "one")
	if err := a.Run(s); err != nil {
		t.Fatal(err)
	}
	h := s.X.Req.Header
	if got := h.Get("X-Client-Ip"); got != "203.0.113.7" {
		t.Errorf("x-client-ip = %q", got)
	}
	if h.Get("X-Num") != "1" || h.Get("X-Bool") != "true" {
		t.Errorf("scalar values: %v", h)
	}
	if got := h.Values("X-Existing"); len(got) != 2 || got[0] != "one" || got[1] != "two" {
		t.Errorf("x-existing = %v, want appended", got)
	}
	if s.X.Req.Host != "backend.local" {
		t.Errorf("host = %q, want replaced", s.X.Req.Host)
	}
	if got := result(t, s, "actions.ngrok.add_headers.headers_added['x-num']"); got != "1" {
		t.Errorf("headers_added[x-num] = %v", got)
	}
}

func TestAddHeadersResponse(t *testing.T) {
	a := mustBuild(t, "add-headers", policy.OnHTTPResponse, `headers: {x-custom-header: my-custom-value, x-started: "started at ${conn.ts.start}"}`)
	s := withResponse(newState(t, policy.OnHTTPRequest, "GET", "http://example.com/", "127.0.0.1:1"), 200, "ok")
	if err := a.Run(s); err != nil {
		t.Fatal(err)
	}
	if got := s.X.Res.Header.Get("X-Custom-Header"); got != "my-custom-value" {
		t.Errorf("x-custom-header = %q", got)
	}
	if got := s.X.Res.Header.Get("X-Started"); got != "started at 2024-06-24T15:30:00Z" {
		t.Errorf("x-started = %q", got)
	}
}

func TestAddHeadersConfigErrors(t *testing.T) {
	tests := []struct{ name, config, want string }{
		{"missing", ``, "at least one header"},
		{"empty", `headers: {}`, "at least one header"},
		{"bad name", `headers: {"bad name": x}`, `"bad name" is not a valid header name`},
		{"too many", `headers: {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1, h: 1, i: 1, j: 1, k: 1}`, "at most 10"},
		{"unknown field", `{headers: {a: b}, header: x}`, `unknown field "header"`},
		{"list", `headers: [a]`, "expected a mapping"},
		{"bad cel", `headers: {a: "${nope.x}"}`, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := build(t, "add-headers", policy.OnHTTPRequest, tt.config)
			wantErr(t, err, tt.want)
		})
	}
}

func TestAddHeadersRejectsInjection(t *testing.T) {
	a := mustBuild(t, "add-headers", policy.OnHTTPRequest, `headers: {x-q: "${req.url.query}"}`)
	s := newState(t, policy.OnHTTPRequest, "GET", "http://example.com/?a=%0d%0aevil", "127.0.0.1:1")
	s.X.Req.RawQuery = "a=\r\nevil: 1"
	wantErr(t, a.Run(s), "not allowed in a header")
}
