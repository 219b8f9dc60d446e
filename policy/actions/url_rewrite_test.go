package actions

import (
	"testing"

	"github.com/sluicehq/sluice/policy"
)

func TestURLRewrite(t *testing.T) {
	tests := []struct {
		name, config, url      string
		wantHost, wantURI      string
		wantErr, wantResultURL string
	}{
		{"path", `{from: /products, to: /products.php}`, "https://example.ngrok.app/products",
			"example.ngrok.app", "/products.php", "", "https://example.ngrok.app/products.php"},
		{"regex group", `{from: "/products/?([.*]+)?", to: "/products.php?query=$1"}`, "https://example.ngrok.app/products/123",
			"example.ngrok.app", "/products.php?query=123", "", ""},
		{"interpolated from empties host", `{from: "${req.url.authority}/products/?([.*]+)?", to: "/products.php?query=$1"}`,
			"https://example.ngrok.app/products/123", "example.ngrok.app", "/products.php?query=123", "", ""},
		{"no match keeps url", `{from: ^/nomatch, to: /x}`, "http://a.example/keep?q=1",
			"a.example", "/keep?q=1", "", "http://a.example/keep?q=1"},
		{"all matches replaced", `{from: "v1", to: "v2"}`, "http://a.example/v1/x/v1",
			"a.example", "/v2/x/v2", "", ""},
		{"no from replaces whole URL", `{to: "/static/index.html"}`, "http://a.example/deep/path?x=1",
			"a.example", "/static/index.html", "", ""},
		{"host change", `{from: "^http://a.example/", to: "http://b.example:8080/"}`, "http://a.example/p",
			"b.example:8080", "/p", "", ""},
		{"named group", `{from: "/u/(?P<id>[0-9]+)", to: "/users?id=$id"}`, "http://a.example/u/42",
			"a.example", "/users?id=42", "", ""},
		{"scheme change refused", `{from: "^http:", to: "https:"}`, "http://a.example/",
			"a.example", "/", "cannot change the scheme", ""},
		{"space escaped", `{from: "/geo", to: "/geo?city=${'San Francisco'}"}`, "http://a.example/geo",
			"a.example", "/geo?city=San%20Francisco", "", ""},
		{"query only", `{from: "\\?.*$", to: ""}`, "http://a.example/p?secret=1",
			"a.example", "/p", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustBuild(t, "url-rewrite", policy.OnHTTPRequest, tt.config)
			s := newState(t, policy.OnHTTPRequest, "GET", tt.url, "127.0.0.1:1")
			err := a.Run(s)
			if tt.wantErr != "" {
				wantErr(t, err, tt.wantErr)
				if code := result(t, s, "actions.ngrok.url_rewrite.error.code"); code == "" {
					t.Error("no error.code result")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.X.Req.Host != tt.wantHost || s.X.Req.URI() != tt.wantURI {
				t.Errorf("got host %q uri %q, want %q %q", s.X.Req.Host, s.X.Req.URI(), tt.wantHost, tt.wantURI)
			}
			if tt.wantResultURL != "" {
				if got := result(t, s, "actions.ngrok.url_rewrite.url"); got != tt.wantResultURL {
					t.Errorf("result url = %v, want %s", got, tt.wantResultURL)
				}
			}
			if s.X.Res != nil {
				t.Error("url-rewrite answered the request")
			}
		})
	}
}

func TestURLRewriteMatchesResult(t *testing.T) {
	a := mustBuild(t, "url-rewrite", policy.OnHTTPRequest, `{from: "/api/(v[0-9])/(\\w+)", to: "/$2/$1"}`)
	s := newState(t, policy.OnHTTPRequest, "GET", "http://a.example/api/v1/users", "127.0.0.1:1")
	if err := a.Run(s); err != nil {
		t.Fatal(err)
	}
	if s.X.Req.Path != "/users/v1" {
		t.Fatalf("path = %q", s.X.Req.Path)
	}
	m := result(t, s, "actions.ngrok.url_rewrite.matches").([]any)
	if len(m) != 3 || m[0] != "/api/v1/users" || m[1] != "v1" || m[2] != "users" {
		t.Errorf("matches = %v", m)
	}
}

func TestURLRewriteConfigErrors(t *testing.T) {
	tests := []struct{ config, want string }{
		{`{from: /a}`, `missing required field "to"`},
		{`{from: "/a(", to: /b}`, "invalid regular expression"},
		{`{from: /a, to: /b, status_code: 301}`, `unknown field "status_code"`},
	}
	for _, tt := range tests {
		_, err := build(t, "url-rewrite", policy.OnHTTPRequest, tt.config)
		wantErr(t, err, tt.want)
	}
}

func TestURLRewriteBadInterpolatedRegexp(t *testing.T) {
	a := mustBuild(t, "url-rewrite", policy.OnHTTPRequest, `{from: "${req.url.path}(", to: /x}`)
	s := newState(t, policy.OnHTTPRequest, "GET", "http://a.example/p", "127.0.0.1:1")
	wantErr(t, a.Run(s), "invalid regular expression")
	if s.X.Req.Path != "/p" {
		t.Error("request changed despite the error")
	}
}
