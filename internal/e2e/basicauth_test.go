package e2e

// basic-auth through the real listener: the challenge a browser sees, the
// upstream reached only with a configured pair, and the result variables.

import (
	"encoding/base64"
	"strings"
	"testing"
)

func basic(userPass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(userPass))
}

func TestBasicAuth(t *testing.T) {
	const pol = `
on_http_request:
  - actions:
      - type: basic-auth
        config:
          realm: staff
          credentials: [alice:correct-horse, "bob:${'battery-staple'}"]
`
	challenge := hdr("www-authenticate", `Basic realm="staff"`)
	runActionCases(t, []actionCase{
		{name: "no credentials: 401 with the challenge", policy: pol,
			want: expect{Status: 401, Headers: challenge, NoUpstream: true, Body: str("")}},
		{name: "right credentials reach the upstream with the header", policy: pol,
			req:  request{Header: []string{"Authorization", basic("alice:correct-horse")}},
			want: expect{Status: 200, Upstream: true, UpHeaders: hdr("authorization", basic("alice:correct-horse")), Absent: []string{"www-authenticate"}}},
		{name: "interpolated password", policy: pol,
			req:  request{Header: []string{"Authorization", basic("bob:battery-staple")}},
			want: expect{Status: 200, Upstream: true}},
		{name: "wrong password", policy: pol,
			req:  request{Header: []string{"Authorization", basic("alice:battery-staple")}},
			want: expect{Status: 401, Headers: challenge, NoUpstream: true}},
		{name: "not base64", policy: pol,
			req:  request{Header: []string{"Authorization", "Basic alice:correct-horse"}},
			want: expect{Status: 401, Headers: challenge, NoUpstream: true}},
		{name: "other scheme", policy: pol,
			req:  request{Header: []string{"Authorization", "Bearer " + base64.StdEncoding.EncodeToString([]byte("alice:correct-horse"))}},
			want: expect{Status: 401, Headers: challenge, NoUpstream: true}},
		{name: "default realm", policy: `
on_http_request:
  - actions:
      - type: basic-auth
        config:
          credentials: [alice:correct-horse]
`,
			want: expect{Status: 401, Headers: hdr("www-authenticate", `Basic realm="ngrok"`), NoUpstream: true}},
		{name: "results and enforce: false", policy: `
on_http_request:
  - actions:
      - type: basic-auth
        config:
          credentials: [alice:correct-horse]
          enforce: false
  - expressions: ['!actions.ngrok.basic_auth.credentials.authorized']
    actions:
      - type: custom-response
        config:
          status_code: 403
          body: "${actions.ngrok.basic_auth.credentials.username} presented=${actions.ngrok.basic_auth.credentials.presented}"
`,
			req:  request{Header: []string{"Authorization", basic("mallory:correct-horse")}},
			want: expect{Status: 403, Body: str("mallory presented=true"), NoUpstream: true}},
	})
}

// Credentials that ngrok refuses do not load: the error names the file, line
// and column, and does not repeat the password.
func TestBasicAuthLoadErrors(t *testing.T) {
	for src, want := range map[string]string{
		"on_http_request:\n  - actions:\n      - type: basic-auth\n        config: {credentials: [alice:short]}\n":          "p.yaml:4:32: basic-auth: credentials[0]: the password has 5 characters",
		"on_http_request:\n  - actions:\n      - type: basic-auth\n        config: {credentials: [alicepw12345]}\n":         "p.yaml:4:32: basic-auth: credentials[0]: no ':'",
		"on_http_response:\n  - actions:\n      - type: basic-auth\n        config: {credentials: [alice:correct-horse]}\n": "p.yaml:3:15: action \"basic-auth\" is not allowed in on_http_response",
	} {
		err := loadPolicy(t, "p.yaml", src)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want one containing %q", err, want)
		}
		if err != nil && (strings.Contains(err.Error(), "short") || strings.Contains(err.Error(), "pw12345")) {
			t.Errorf("error reveals the password: %v", err)
		}
	}
}
