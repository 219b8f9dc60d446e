package actions

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/policy"
)

const rateCfg = `
name: Only allow 3 requests per minute
algorithm: sliding_window
capacity: 3
rate: 60s
bucket_key:
  - conn.client_ip
  - "hasReqHeader('x-api-key') ? getReqHeader('x-api-key') : ['none']"
`

func TestRateLimit(t *testing.T) {
	a := mustBuild(t, "rate-limit", policy.OnHTTPRequest, rateCfg)
	run := func(client, key string) *policy.State {
		var hdr []string
		if key != "" {
			hdr = []string{"X-Api-Key", key}
		}
		s := newState(t, policy.OnHTTPRequest, "GET", "https://example.com/", client, hdr...)
		if err := a.Run(s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for i := 0; i < 3; i++ {
		if s := run("192.0.2.1:1", "k1"); s.X.Res != nil {
			t.Fatalf("request %d limited", i)
		}
	}
	s := run("192.0.2.1:1", "k1")
	if s.X.Res == nil || s.X.Res.StatusCode != 429 {
		t.Fatalf("4th request: %+v", s.X.Res)
	}
	ra, err := strconv.Atoi(s.X.Res.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 120 {
		t.Errorf("Retry-After = %q", s.X.Res.Header.Get("Retry-After"))
	}
	if got := result(t, s, "actions.ngrok.rate_limit.limited"); got != true {
		t.Errorf("limited = %v", got)
	}
	if got := result(t, s, "actions.ngrok.rate_limit.bucket_key"); got != "192.0.2.1,k1" {
		t.Errorf("bucket_key = %v", got)
	}
	// Other combinations are other buckets.
	if s := run("192.0.2.1:1", "k2"); s.X.Res != nil {
		t.Error("other api key limited")
	}
	if s := run("192.0.2.2:1", "k1"); s.X.Res != nil {
		t.Error("other client limited")
	}
	if s := run("192.0.2.1:1", ""); s.X.Res != nil || result(t, s, "actions.ngrok.rate_limit.limited") != false {
		t.Error("no-key bucket limited")
	}
}

func TestRateLimitDryRun(t *testing.T) {
	a := mustBuild(t, "rate-limit", policy.OnHTTPRequest, rateCfg+"enforce: false\n")
	var s *policy.State
	for i := 0; i < 5; i++ {
		s = newState(t, policy.OnHTTPRequest, "GET", "https://example.com/", "192.0.2.1:1")
		if err := a.Run(s); err != nil || s.X.Res != nil {
			t.Fatalf("dry run acted: %v %+v", err, s.X.Res)
		}
	}
	if got := result(t, s, "actions.ngrok.rate_limit.limited"); got != true {
		t.Errorf("limited = %v", got)
	}
}

func TestRateLimitConfigErrors(t *testing.T) {
	base := func(override string) string {
		return "{name: n, algorithm: sliding_window, capacity: 10, rate: 60s, bucket_key: [conn.client_ip], " + override + "}"
	}
	for _, tt := range []struct{ config, want string }{
		{`{algorithm: sliding_window, capacity: 1, rate: 60s, bucket_key: [req.host]}`, `missing required field "name"`},
		{`{name: n, capacity: 1, rate: 60s, bucket_key: [req.host]}`, `missing required field "algorithm"`},
		{`{name: n, algorithm: sliding_window, rate: 60s, bucket_key: [req.host]}`, `missing required field "capacity"`},
		{`{name: n, algorithm: sliding_window, capacity: 1, bucket_key: [req.host]}`, `missing required field "rate"`},
		{`{name: n, algorithm: sliding_window, capacity: 1, rate: 60s}`, `missing required field "bucket_key"`},
		{`{name: n, algorithm: token_bucket, capacity: 1, rate: 60s, bucket_key: [req.host]}`, `"token_bucket" is not supported`},
		{`{name: n, algorithm: sliding_window, capacity: 0, rate: 60s, bucket_key: [req.host]}`, "capacity: 0 is out of range"},
		{`{name: n, algorithm: sliding_window, capacity: 1, rate: 30s, bucket_key: [req.host]}`, `rate: "30s" must be`},
		{`{name: n, algorithm: sliding_window, capacity: 1, rate: 65s, bucket_key: [req.host]}`, "multiple of 10s"},
		{`{name: n, algorithm: sliding_window, capacity: 1, rate: 25h, bucket_key: [req.host]}`, "24h"},
		{`{name: n, algorithm: sliding_window, capacity: 1, rate: soon, bucket_key: [req.host]}`, "expected a duration"},
		{`{name: n, algorithm: sliding_window, capacity: 1, rate: 60s, bucket_key: []}`, "want 1 to 10"},
		{`{name: n, algorithm: sliding_window, capacity: 1, rate: 60s, bucket_key: [no_such_var]}`, "no_such_var"},
		{base("burst: 5"), `unknown field "burst"`},
	} {
		_, err := build(t, "rate-limit", policy.OnHTTPRequest, tt.config)
		wantErr(t, err, tt.want)
	}
}

// TestRateLimitSurvivesReload builds the action twice, as a reload does
// (new version first, old closed after draining), and checks the counters
// carry over, while a changed capacity starts a fresh table.
func TestRateLimitSurvivesReload(t *testing.T) {
	cfg := "{name: reload test, algorithm: sliding_window, capacity: 2, rate: 60s, bucket_key: [conn.client_ip]}"
	newAct := func(cfg string) *RateLimit {
		a, err := build(t, "rate-limit", policy.OnHTTPRequest, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return a.(*RateLimit)
	}
	limited := func(a *RateLimit) bool {
		s := newState(t, policy.OnHTTPRequest, "GET", "https://example.com/", "192.0.2.50:1")
		if err := a.Run(s); err != nil {
			t.Fatal(err)
		}
		return s.X.Res != nil
	}
	v1 := newAct(cfg)
	limited(v1)
	limited(v1)
	v2 := newAct(cfg) // reload: built before v1 is closed
	v1.Close()
	v1.Close() // idempotent: must not drop v2's reference
	if !limited(v2) {
		t.Fatal("counters reset by the reload")
	}
	v3 := newAct(strings.Replace(cfg, "capacity: 2", "capacity: 3", 1))
	if limited(v3) {
		t.Fatal("a different capacity shares the old table")
	}
	v2.Close()
	v3.Close()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	for k := range sharedTables {
		if strings.HasPrefix(k, "reload test\x00") {
			t.Errorf("table %q still registered after its last Close", k)
		}
	}
}

func TestRateLimitKeyParts(t *testing.T) {
	for _, tt := range []struct {
		v    any
		want string
	}{
		{nil, ""},
		{"a", "a"},
		{[]any{"a", int64(2), true}, "a,2,true"},
		{[]string{"x", "y"}, "x,y"},
		{int64(7), "7"},
		{1.5, "1.5"},
		{time.Duration(0), "0s"},
	} {
		var b strings.Builder
		writeKeyPart(&b, tt.v)
		if b.String() != tt.want {
			t.Errorf("writeKeyPart(%#v) = %q, want %q", tt.v, b.String(), tt.want)
		}
	}
}

// TestRateLimitReleasedWhenPolicyFailsToLoad: a policy whose later action
// is broken must not leave the earlier rate-limit's table behind.
func TestRateLimitReleasedWhenPolicyFailsToLoad(t *testing.T) {
	src := `
on_http_request:
  - actions:
      - type: rate-limit
        config: {name: load failure, algorithm: sliding_window, capacity: 1, rate: 60s, bucket_key: [conn.client_ip]}
      - type: deny
        config: {status_code: 42}
`
	if _, err := policy.Parse("broken.yaml", []byte(src)); err == nil {
		t.Fatal("broken policy loaded")
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	for k := range sharedTables {
		if strings.HasPrefix(k, "load failure\x00") {
			t.Fatal("the rate-limit table of a policy that failed to load is still open")
		}
	}
}

// ngrok's "rate limit by host header" example keys on getReqHeader('host'):
// each Host gets its own bucket, though Go keeps Host out of the header map.
func TestRateLimitByHostHeader(t *testing.T) {
	a := mustBuild(t, "rate-limit", policy.OnHTTPRequest, `
name: Only allow 2 requests per minute
algorithm: sliding_window
capacity: 2
rate: 60s
bucket_key:
  - "hasReqHeader('host') ? getReqHeader('host')[0] : 'unknown'"
`)
	limited := func(host string) bool {
		s := newState(t, policy.OnHTTPRequest, "GET", "http://"+host+"/", "192.0.2.1:1")
		if err := a.Run(s); err != nil {
			t.Fatal(err)
		}
		return s.X.Res != nil
	}
	for i := 0; i < 2; i++ {
		if limited("a.example") {
			t.Fatalf("request %d to a.example limited", i)
		}
	}
	if !limited("a.example") {
		t.Fatal("third request to a.example not limited")
	}
	if limited("b.example") {
		t.Fatal("b.example shares a.example's bucket: the host is not in req.headers")
	}
}
