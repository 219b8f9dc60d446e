package actions

import (
	"testing"

	"github.com/sluicehq/sluice/policy"
)

func TestRedirect(t *testing.T) {
	tests := []struct {
		name, config, url string
		wantStatus        int // 0: no redirect
		wantLocation      string
		wantHeader        [2]string
	}{
		{"path with groups", `{from: "^(https?://[^/]+)/products(.*)$", to: "$1/store/products$2"}`,
			"https://example.ngrok.app/products", 302, "https://example.ngrok.app/store/products", [2]string{}},
		{"status and headers", `{from: "/api/v1/", to: "/api/v2/", status_code: 301, headers: {x-redirected: true}}`,
			"https://example.com/foobar/api/v1/users", 301, "https://example.com/foobar/api/v2/users", [2]string{"X-Redirected", "true"}},
		{"relative to without from", `{to: "/api/v2/geo?city=${'San Francisco'}"}`,
			"https://example.ngrok.app/api/v2/geo", 302, "https://example.ngrok.app/api/v2/geo?city=San%20Francisco", [2]string{}},
		{"absolute without from", `{to: "https://new.example.com/blog"}`,
			"https://example.com/anything?x", 302, "https://new.example.com/blog", [2]string{}},
		{"other host", `{from: "^https?://[^/]+/old/(.*)$", to: "https://new.example.com/new/$1", status_code: 308}`,
			"https://example.com/old/foo", 308, "https://new.example.com/new/foo", [2]string{}},
		{"http to https", `{from: "^http://", to: "https://", status_code: 301}`,
			"http://example.com/a?b=1", 301, "https://example.com/a?b=1", [2]string{}},
		{"bad host", `{from: /old, to: "https://new.example.com/blog"}`, "https://example.com/old/foo", -1, "", [2]string{}},
		{"no match", `{from: /nope, to: /x}`, "https://example.com/a", 0, "", [2]string{}},
		{"same URL skipped", `{from: "(/a)", to: "$1"}`, "https://example.com/a", 0, "", [2]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustBuild(t, "redirect", policy.OnHTTPRequest, tt.config)
			s := newState(t, policy.OnHTTPRequest, "GET", tt.url, "127.0.0.1:1")
			err := a.Run(s)
			if tt.wantStatus < 0 {
				wantErr(t, err, "no valid host")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantStatus == 0 {
				if s.X.Res != nil {
					t.Fatalf("redirected to %q", s.X.Res.Header.Get("Location"))
				}
				return
			}
			if s.X.Res == nil {
				t.Fatal("no redirect")
			}
			if s.X.Res.StatusCode != tt.wantStatus || s.X.Res.Header.Get("Location") != tt.wantLocation {
				t.Errorf("got %d %q, want %d %q", s.X.Res.StatusCode, s.X.Res.Header.Get("Location"), tt.wantStatus, tt.wantLocation)
			}
			if tt.wantHeader[0] != "" && s.X.Res.Header.Get(tt.wantHeader[0]) != tt.wantHeader[1] {
				t.Errorf("header %s = %q", tt.wantHeader[0], s.X.Res.Header.Get(tt.wantHeader[0]))
			}
			if got := result(t, s, "actions.ngrok.redirect.url"); got != tt.wantLocation {
				t.Errorf("result url = %v", got)
			}
		})
	}
}

func TestRedirectConfigErrors(t *testing.T) {
	tests := []struct{ config, want string }{
		{`{from: /a}`, `missing required field "to"`},
		{`{to: /b, status_code: 200}`, "status_code: 200 is not allowed"},
		{`{to: /b, status_code: abc}`, "expected an integer"},
		{`{from: "[", to: /b}`, "invalid regular expression"},
		{`{to: /b, headers: {"a b": c}}`, "not a valid header name"},
	}
	for _, tt := range tests {
		_, err := build(t, "redirect", policy.OnHTTPRequest, tt.config)
		wantErr(t, err, tt.want)
	}
}
