package actions

import (
	"testing"

	"github.com/sluicehq/sluice/policy"
)

func TestForwardInternal(t *testing.T) {
	tests := []struct{ config, reqURL, want string }{
		{`url: https://example.internal`, "https://pub.example.com/", "https://example.internal"},
		{`url: HTTPS://Example.Internal:443/`, "https://pub.example.com/", "https://example.internal"},
		{`url: http://api.internal:8080`, "https://pub.example.com/", "http://api.internal:8080"},
		{`url: billing.internal`, "http://pub.example.com/", "http://billing.internal"},
		{`url: "https://${req.url.path == '/a' ? 'a' : 'b'}.internal"`, "https://pub.example.com/a", "https://a.internal"},
	}
	for _, tt := range tests {
		a := mustBuild(t, "forward-internal", policy.OnHTTPRequest, tt.config)
		s := newState(t, policy.OnHTTPRequest, "GET", tt.reqURL, "127.0.0.1:1")
		if err := a.Run(s); err != nil {
			t.Fatalf("%s: %v", tt.config, err)
		}
		if s.X.ForwardInternal != tt.want {
			t.Errorf("%s: ForwardInternal = %q, want %q", tt.config, s.X.ForwardInternal, tt.want)
		}
		if s.X.Res != nil {
			t.Errorf("%s: answered the request", tt.config)
		}
	}
}

func TestForwardInternalErrors(t *testing.T) {
	for _, tt := range []struct{ config, want string }{
		{``, `missing required field "url"`},
		{`url: https://example.com`, "not an internal endpoint"},
		{`url: https://a.internal/path`, "only scheme, host and port"},
		{`url: ftp://a.internal`, "scheme must be"},
		{`url: ""`, "is empty"},
	} {
		_, err := build(t, "forward-internal", policy.OnHTTPRequest, tt.config)
		wantErr(t, err, tt.want)
	}
	a := mustBuild(t, "forward-internal", policy.OnHTTPRequest, `url: "${req.host}"`)
	s := newState(t, policy.OnHTTPRequest, "GET", "https://public.example.com/", "127.0.0.1:1")
	wantErr(t, a.Run(s), "not an internal endpoint")
	if s.X.ForwardInternal != "" {
		t.Error("forwarded despite the error")
	}
}
