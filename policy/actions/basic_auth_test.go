package actions

import (
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/internal/testlog"
	"github.com/sluicehq/sluice/policy"
)

func basicHeader(userPass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(userPass))
}

// basicAuthProxy serves policy through miniProxy in front of a backend that
// counts its requests and echoes what it saw of the results.
func basicAuthProxy(t *testing.T, pol string, logs *testlog.Buffer) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("X-Seen-User", r.Header.Get("X-User"))
		w.Header().Set("X-Seen-Authorized", r.Header.Get("X-Authorized"))
		w.Header().Set("X-Seen-Presented", r.Header.Get("X-Presented"))
		io.WriteString(w, "upstream")
	}))
	t.Cleanup(backend.Close)
	h, err := policy.NewInlineHandle("basic.yaml", []byte(pol), policy.Options{Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	px := miniProxy(t, h, backend.URL)
	t.Cleanup(px.Close)
	return px, &hits
}

func TestBasicAuthThroughHTTP(t *testing.T) {
	const pol = `
on_http_request:
  - actions:
      - type: basic-auth
        config:
          realm: sample-realm
          credentials:
            - user:password1
            - admin:pass:word:2
            - "${'dyn'}:${'dynamic-pw'}"
            - "${'whole:whole-password'}"
`
	px, hits := basicAuthProxy(t, pol, &testlog.Buffer{})
	tests := []struct {
		name   string
		auth   []string // Authorization values; none: header absent
		status int
	}{
		{"no Authorization header", nil, 401},
		{"right credentials", []string{basicHeader("user:password1")}, 200},
		{"second pair, password with colons", []string{basicHeader("admin:pass:word:2")}, 200},
		{"scheme is case-insensitive", []string{"bAsIc " + base64.StdEncoding.EncodeToString([]byte("user:password1"))}, 200},
		{"interpolated username and password", []string{basicHeader("dyn:dynamic-pw")}, 200},
		{"interpolated whole credential", []string{basicHeader("whole:whole-password")}, 200},
		{"wrong password", []string{basicHeader("user:password2")}, 401},
		{"another pair's password", []string{basicHeader("admin:password1")}, 401},
		{"unknown user", []string{basicHeader("nobody:password1")}, 401},
		{"password prefix", []string{basicHeader("user:password")}, 401},
		{"password with a suffix", []string{basicHeader("user:password1x")}, 401},
		{"empty credentials", []string{basicHeader(":")}, 401},
		{"not base64", []string{"Basic !!!not-base64!!!"}, 401},
		{"no colon", []string{basicHeader("userpassword1")}, 401},
		{"other scheme", []string{"Bearer " + base64.StdEncoding.EncodeToString([]byte("user:password1"))}, 401},
		{"scheme without credentials", []string{"Basic"}, 401},
		{"raw credentials, not encoded", []string{"Basic user:password1"}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", px.URL+"/private", nil)
			for _, v := range tt.auth {
				req.Header.Add("Authorization", v)
			}
			before := hits.Load()
			res, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (body %q)", res.StatusCode, tt.status, b)
			}
			reached := hits.Load() > before
			if tt.status == 200 {
				if !reached || string(b) != "upstream" {
					t.Errorf("upstream reached=%v body %q", reached, b)
				}
				return
			}
			if reached {
				t.Errorf("the upstream was contacted for a refused request")
			}
			if got := res.Header.Get("WWW-Authenticate"); got != `Basic realm="sample-realm"` {
				t.Errorf("WWW-Authenticate = %q", got)
			}
			if len(b) != 0 {
				t.Errorf("body %q, want none", b)
			}
		})
	}
}

func TestBasicAuthDefaultRealmAndQuoting(t *testing.T) {
	for _, tt := range []struct{ config, want string }{
		{`credentials: [user:password1]`, `Basic realm="ngrok"`},
		{`{credentials: [user:password1], realm: 'say "hi" \ bye'}`, `Basic realm="say \"hi\" \\ bye"`},
	} {
		a := mustBuild(t, "basic-auth", policy.OnHTTPRequest, tt.config)
		s := newState(t, policy.OnHTTPRequest, "GET", "https://example.com/", "127.0.0.1:1")
		if err := a.Run(s); err != nil {
			t.Fatal(err)
		}
		if s.X.Res == nil || s.X.Res.StatusCode != 401 {
			t.Fatalf("%s: response %+v", tt.config, s.X.Res)
		}
		if got := s.X.Res.Header.Get("Www-Authenticate"); got != tt.want {
			t.Errorf("%s: WWW-Authenticate = %q, want %q", tt.config, got, tt.want)
		}
	}
}

// The result variables, read by the next rule, and enforce: false letting a
// failed request through.
func TestBasicAuthResultsAndDryRun(t *testing.T) {
	const pol = `
on_http_request:
  - actions:
      - type: basic-auth
        config:
          credentials: [user:password1]
          enforce: false
      - type: add-headers
        config:
          headers:
            x-user: ${actions.ngrok.basic_auth.credentials.username}
            x-authorized: ${actions.ngrok.basic_auth.credentials.authorized}
            x-presented: ${actions.ngrok.basic_auth.credentials.presented}
`
	logs := &testlog.Buffer{}
	px, hits := basicAuthProxy(t, pol, logs)
	for _, tt := range []struct {
		name, auth                  string
		user, authorized, presented string
	}{
		{"authorized", basicHeader("user:password1"), "user", "true", "true"},
		{"wrong password goes through", basicHeader("user:nope-nope"), "user", "false", "true"},
		{"nothing presented goes through", "", "", "false", "false"},
		{"malformed is not presented", "Basic %%%", "", "false", "false"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", px.URL+"/", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			before, logsBefore := hits.Load(), logs.String()
			res, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 200 || hits.Load() == before {
				t.Fatalf("status %d, upstream reached %v; a dry run must let it through", res.StatusCode, hits.Load() > before)
			}
			got := [3]string{res.Header.Get("X-Seen-User"), res.Header.Get("X-Seen-Authorized"), res.Header.Get("X-Seen-Presented")}
			if want := [3]string{tt.user, tt.authorized, tt.presented}; got != want {
				t.Errorf("username, authorized, presented = %q, want %q", got, want)
			}
			// The dry run logs what it let through, and only that.
			logged := strings.TrimPrefix(logs.String(), logsBefore)
			want := ""
			if tt.authorized == "false" {
				want = "presented=" + tt.presented
			}
			if has := strings.Contains(logged, "not authorized"); has != (want != "") || !strings.Contains(logged, want) {
				t.Errorf("logged %q, want a line with %q: %v", logged, want, want != "")
			}
		})
	}
}

func TestBasicAuthConfigErrors(t *testing.T) {
	long := strings.Repeat("p", 129)
	tests := []struct{ name, config, want string }{
		{"no credentials", `realm: r`, "basic.yaml:5:11: basic-auth: credentials: at least one"},
		{"empty credentials", `credentials: []`, "basic.yaml:5:24: basic-auth: credentials: at least one"},
		{"no colon", `credentials: [userpassword1]`, "basic.yaml:5:25: basic-auth: credentials[0]: no ':'"},
		{"password too short", `credentials: [ok:password1, user:short]`, "basic.yaml:5:39: basic-auth: credentials[1]: the password has 5 characters; it must have 8 to 128"},
		{"password too long", `credentials: ["user:` + long + `"]`, "basic.yaml:5:25: basic-auth: credentials[0]: the password has 129 characters"},
		{"too many pairs", `credentials: [a:password1, b:password1, c:password1, d:password1, e:password1, f:password1, g:password1, h:password1, i:password1, j:password1, k:password1]`, "at most 10 pairs are allowed, got 11"},
		{"not a string", `credentials: [{user: password1}]`, `credentials[0]: want a "username:password" string`},
		{"interpolation spanning the colon", `credentials: ["user${'x'}password"]`, "must be outside ${}"},
		{"bad CEL", `credentials: ["user:${nosuch.var}"]`, `basic.yaml:5:33: CEL: unknown variable "nosuch.var"`},
		{"realm too long", `{credentials: [user:password1], realm: ` + strings.Repeat("r", 129) + `}`, "realm: 129 characters, at most 128"},
		{"realm not ASCII", `{credentials: [user:password1], realm: réalm}`, "only printable ASCII"},
		{"realm with a newline", `{credentials: [user:password1], realm: "a\nb"}`, "only printable ASCII"},
		{"unknown field", `{credentials: [user:password1], users: [a]}`, `unknown field "users"`},
		{"enforce not a bool", `{credentials: [user:password1], enforce: maybe}`, "enforce must be true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := "on_http_request:\n  - actions:\n      - type: basic-auth\n        config:\n          " + tt.config + "\n"
			_, err := policy.Parse("basic.yaml", []byte(pol))
			wantErr(t, err, tt.want)
		})
	}
}

func TestBasicAuthPhases(t *testing.T) {
	for _, ph := range []string{"on_tcp_connect", "on_http_response"} {
		pol := ph + ":\n  - actions:\n      - type: basic-auth\n        config: {credentials: [user:password1]}\n"
		_, err := policy.Parse("basic.yaml", []byte(pol))
		wantErr(t, err, "basic.yaml:3:15", `"basic-auth" is not allowed in `+ph, "only in on_http_request")
	}
}

// A password never appears in a load error.
func TestBasicAuthErrorsHidePasswords(t *testing.T) {
	for _, cfg := range []string{`credentials: [user:short1]`, `credentials: [s3cretpassword]`} {
		_, err := build(t, "basic-auth", policy.OnHTTPRequest, cfg)
		if err == nil {
			t.Fatalf("%s loaded", cfg)
		}
		if strings.Contains(err.Error(), "short1") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error reveals the password: %v", err)
		}
	}
}

// An interpolated credential that evaluates to an invalid one fails the
// action (on_error decides) instead of letting anyone in.
func TestBasicAuthDynamicCredentialErrors(t *testing.T) {
	for _, cfg := range []string{
		`credentials: ["${'no-colon-here'}"]`,
		`credentials: ["user:${'short'}"]`,
		`credentials: ["${'a:b'}:password1"]`,
	} {
		a := mustBuild(t, "basic-auth", policy.OnHTTPRequest, cfg)
		s := newState(t, policy.OnHTTPRequest, "GET", "https://example.com/", "127.0.0.1:1",
			"Authorization", basicHeader("a:b:password1"))
		err := a.Run(s)
		wantErr(t, err, "credentials[0]")
		if s.X.Res != nil {
			t.Errorf("%s: answered %d despite the error", cfg, s.X.Res.StatusCode)
		}
	}
}
