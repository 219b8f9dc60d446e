package actions

import (
	"testing"

	"github.com/sluicehq/sluice/policy"
)

func TestCustomResponse(t *testing.T) {
	tests := []struct {
		name, config string
		status       int
		ct, body     string
	}{
		{"html maintenance", `{status_code: 503, body: "<html><body><h1>Down</h1></body></html>", headers: {content-type: text/html}}`,
			503, "text/html", "<html><body><h1>Down</h1></body></html>"},
		{"default status and json sniffed", `{body: '{"connection-start":"${conn.ts.start}"}'}`,
			200, "application/json", `{"connection-start":"2024-06-24T15:30:00Z"}`},
		{"plain text sniffed", `{status_code: 418, body: "I am a teapot at ${req.url.path}"}`,
			418, "text/plain; charset=utf-8", "I am a teapot at /x"},
		{"html sniffed", `{body: "<!DOCTYPE html><p>hi"}`, 200, "text/html; charset=utf-8", "<!DOCTYPE html><p>hi"},
		{"no body", `{status_code: 302, headers: {location: "https://www.example.com"}}`, 302, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustBuild(t, "custom-response", policy.OnHTTPRequest, tt.config)
			s := newState(t, policy.OnHTTPRequest, "GET", "https://example.com/x", "127.0.0.1:1")
			if err := a.Run(s); err != nil {
				t.Fatal(err)
			}
			r := s.X.Res
			if r == nil || r.StatusCode != tt.status || !r.Generated {
				t.Fatalf("response = %+v", r)
			}
			if got := r.Header.Get("Content-Type"); got != tt.ct {
				t.Errorf("content-type = %q, want %q", got, tt.ct)
			}
			if got := body(t, r); got != tt.body {
				t.Errorf("body = %q, want %q", got, tt.body)
			}
			if r.ContentLength != int64(len(tt.body)) {
				t.Errorf("content length = %d", r.ContentLength)
			}
		})
	}
}

func TestCustomResponseReplacesUpstream(t *testing.T) {
	a := mustBuild(t, "custom-response", policy.OnHTTPResponse, `{status_code: 500, body: oops}`)
	s := withResponse(newState(t, policy.OnHTTPRequest, "GET", "https://example.com/", "127.0.0.1:1"), 200, "upstream", "X-Up", "1")
	if err := a.Run(s); err != nil {
		t.Fatal(err)
	}
	if s.X.Res.StatusCode != 500 || s.X.Res.Header.Get("X-Up") != "" || body(t, s.X.Res) != "oops" {
		t.Errorf("response not replaced: %+v", s.X.Res)
	}
}

func TestCustomResponseConfigErrors(t *testing.T) {
	tests := []struct{ config, want string }{
		{`{status_code: 99}`, "status_code: 99"},
		{`{status_code: 600}`, "status_code: 600"},
		{`{body: [a]}`, "expected a string"},
		{`{content: x, body: y}`, "content is the old name of body"},
		{`{contents: x}`, `unknown field "contents"`},
	}
	for _, tt := range tests {
		_, err := build(t, "custom-response", policy.OnHTTPRequest, tt.config)
		wantErr(t, err, tt.want)
	}
}

// content is body's old name, still in ngrok's older gallery examples.
func TestCustomResponseContentIsBody(t *testing.T) {
	a := mustBuild(t, "custom-response", policy.OnHTTPRequest, `{status_code: 418, content: "short and stout"}`)
	s := newState(t, policy.OnHTTPRequest, "GET", "https://example.com/", "127.0.0.1:1")
	if err := a.Run(s); err != nil {
		t.Fatal(err)
	}
	if s.X.Res == nil || s.X.Res.StatusCode != 418 || body(t, s.X.Res) != "short and stout" {
		t.Fatalf("got %+v", s.X.Res)
	}
}
