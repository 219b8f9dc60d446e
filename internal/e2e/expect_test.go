package e2e

// One description of an expected outcome, shared by the table-driven tests
// of actions and variables.

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// expect is what a request through the proxy must produce. Zero fields are
// not checked.
type expect struct {
	Closed       bool              // the connection closed without an HTTP answer
	Status       int               // response status
	Headers      map[string]string // response headers (first value)
	Absent       []string          // response headers that must be missing
	Body         *string           // exact (decoded) body
	BodyContains string
	BodyRegexp   string
	NoUpstream   bool              // the upstream must not have been contacted
	Upstream     bool              // the upstream must have been contacted
	UpURI        string            // target the upstream received
	UpHost       string            // Host the upstream received
	UpMethod     string            // method the upstream received
	UpHeaders    map[string]string // headers the upstream received (first value)
	UpValues     map[string][]string
	UpAbsent     []string // headers the upstream must not have received
	Log          string   // text the logs must contain
}

func str(s string) *string { return &s }

// check compares a reply with x; hitsBefore is the upstream's hit count
// before the request was sent.
func check(t testing.TB, e *env, r reply, hitsBefore int64, x expect) {
	t.Helper()
	if x.Closed {
		if r.Err == nil {
			t.Fatalf("got %d %q; want the connection closed without an answer", r.Status, r.Body)
		}
		return
	}
	if r.Err != nil {
		t.Fatalf("request failed: %v", r.Err)
	}
	if x.Status != 0 && r.Status != x.Status {
		t.Errorf("status %d, want %d (body %q)", r.Status, x.Status, trim(r.Body))
	}
	for k, v := range x.Headers {
		if got := r.Header.Get(k); got != v {
			t.Errorf("response header %s = %q, want %q", k, got, v)
		}
	}
	for _, k := range x.Absent {
		if v := r.Header.Values(k); len(v) > 0 {
			t.Errorf("response header %s = %q, want none", k, v)
		}
	}
	if x.Body != nil && r.Body != *x.Body {
		t.Errorf("body %q, want %q", trim(r.Body), *x.Body)
	}
	if x.BodyContains != "" && !strings.Contains(r.Body, x.BodyContains) {
		t.Errorf("body %q does not contain %q", trim(r.Body), x.BodyContains)
	}
	if x.BodyRegexp != "" && !regexp.MustCompile(x.BodyRegexp).MatchString(r.Body) {
		t.Errorf("body %q does not match %s", trim(r.Body), x.BodyRegexp)
	}
	contacted := e.back.hits.Load() > hitsBefore
	if x.NoUpstream && contacted {
		t.Errorf("the upstream was contacted; want it not to be")
	}
	needUp := x.Upstream || x.UpURI != "" || x.UpHost != "" || x.UpMethod != "" ||
		len(x.UpHeaders) > 0 || len(x.UpValues) > 0 || len(x.UpAbsent) > 0
	if needUp {
		s := e.back.last.Load()
		if !contacted || s == nil {
			t.Fatalf("the upstream was not contacted (status %d, body %q)", r.Status, trim(r.Body))
		}
		if x.UpURI != "" && s.URI() != x.UpURI {
			t.Errorf("upstream got %q, want %q", s.URI(), x.UpURI)
		}
		if x.UpHost != "" && s.Host != x.UpHost {
			t.Errorf("upstream Host %q, want %q", s.Host, x.UpHost)
		}
		if x.UpMethod != "" && s.Method != x.UpMethod {
			t.Errorf("upstream method %q, want %q", s.Method, x.UpMethod)
		}
		for k, v := range x.UpHeaders {
			if got := s.Header.Get(k); got != v {
				t.Errorf("upstream header %s = %q, want %q", k, got, v)
			}
		}
		for k, v := range x.UpValues {
			if got := s.Header.Values(k); !slices.Equal(got, v) {
				t.Errorf("upstream header %s = %q, want %q", k, got, v)
			}
		}
		for _, k := range x.UpAbsent {
			if v := s.Header.Values(k); len(v) > 0 {
				t.Errorf("upstream header %s = %q, want none", k, v)
			}
		}
	}
	if x.Log != "" && !strings.Contains(e.logs.String(), x.Log) {
		t.Errorf("logs do not contain %q:\n%s", x.Log, e.logs.String())
	}
}

func trim(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// hdr builds a header map from pairs, for brevity in tables.
func hdr(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[http.CanonicalHeaderKey(kv[i])] = kv[i+1]
	}
	return m
}
