package actions

import (
	"testing"

	"github.com/sluicehq/sluice/policy"
)

func TestRemoveHeaders(t *testing.T) {
	a := mustBuild(t, "remove-headers", policy.OnHTTPRequest, `headers: [x-client-version, X-TRACE-ID, x-absent]`)
	s := newState(t, policy.OnHTTPRequest, "GET", "http://example.com/", "127.0.0.1:1",
		"X-Client-Version", "3.1", "X-Trace-Id", "abc", "X-Keep", "1")
	s.X.Req.Header["x-trace-id"] = []string{"lowercase spelling"}
	if err := a.Run(s); err != nil {
		t.Fatal(err)
	}
	h := s.X.Req.Header
	if len(h) != 1 || h.Get("X-Keep") != "1" {
		t.Errorf("headers left: %v", h)
	}
	got := result(t, s, "actions.ngrok.remove_headers.headers_removed")
	if l, ok := got.([]any); !ok || len(l) != 2 || l[0] != "x-client-version" || l[1] != "X-TRACE-ID" {
		t.Errorf("headers_removed = %#v", got)
	}
}

func TestRemoveHeadersResponse(t *testing.T) {
	a := mustBuild(t, "remove-headers", policy.OnHTTPResponse, `headers: [server, x-powered-by]`)
	s := withResponse(newState(t, policy.OnHTTPRequest, "GET", "http://example.com/", "127.0.0.1:1"), 200, "",
		"Server", "nginx", "X-Powered-By", "PHP", "Content-Type", "text/plain")
	if err := a.Run(s); err != nil {
		t.Fatal(err)
	}
	if len(s.X.Res.Header) != 1 {
		t.Errorf("headers left: %v", s.X.Res.Header)
	}
}

func TestRemoveHeadersConfigErrors(t *testing.T) {
	tests := []struct{ config, want string }{
		{``, "at least one"},
		{`headers: []`, "at least one"},
		{`headers: [a, "b c"]`, `headers[1]: "b c" is not a valid header name`},
		{`headers: [a, b, c, d, e, f, g, h, i, j, k]`, "at most 10"},
		{`headers: x`, "expected a list"},
	}
	for _, tt := range tests {
		_, err := build(t, "remove-headers", policy.OnHTTPRequest, tt.config)
		wantErr(t, err, tt.want)
	}
}
