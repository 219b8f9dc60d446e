package policy

import (
	"errors"
	"net/netip"
	"reflect"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/exchange"
)

func TestRuleOrderAndExpressions(t *testing.T) {
	takeRecorded()
	p := mustParse(t, `
on_http_request:
  - name: first
    actions:
      - type: t-record
        config: {value: r1a}
      - type: t-record
        config: {value: r1b}
  - name: not matching
    expressions: ["req.method == 'POST'", "req.url.path == '/nope'"]
    actions:
      - type: t-record
        config: {value: r2}
  - name: matching
    expressions: ["req.method == 'POST'", "req.url.path.startsWith('/api')"]
    actions:
      - type: t-record
        config: {value: r3}
`)
	_, x := fixture()
	if err := p.RunRequest(x); err != nil {
		t.Fatal(err)
	}
	if got := takeRecorded(); !reflect.DeepEqual(got, []any{"r1a", "r1b", "r3"}) {
		t.Fatalf("ran %v", got)
	}
}

func TestTerminatingAndResponsePhase(t *testing.T) {
	takeRecorded()
	p := mustParse(t, `
on_http_request:
  - actions:
      - type: t-respond
        config: {status_code: 418, body: "teapot ${req.method}"}
      - type: t-record
        config: {value: after-in-rule}
  - actions:
      - type: t-record
        config: {value: next-rule}
on_http_response:
  - expressions: ["res.status_code == 418"]
    actions:
      - type: t-header
        config: {name: X-Seen, value: "${res.status_code}"}
`)
	h := NewPolicyHandle(p, Options{})
	defer h.Close()
	_, x := fixture()
	x.Res = nil
	if err := h.OnRequest(x); err != nil {
		t.Fatal(err)
	}
	if got := takeRecorded(); len(got) != 0 {
		t.Fatalf("actions after a terminating one ran: %v", got)
	}
	if x.Res == nil || x.Res.StatusCode != 418 || x.Res.ContentLength != int64(len("teapot POST")) {
		t.Fatalf("response %+v", x.Res)
	}
	if err := h.OnResponse(x); err != nil {
		t.Fatal(err)
	}
	h.Done(x)
	if got := x.Res.Header.Get("X-Seen"); got != "418" {
		t.Fatalf("response phase did not run on the generated response: %q", got)
	}
}

func TestOnError(t *testing.T) {
	takeRecorded()
	p := mustParse(t, `
on_http_request:
  - actions:
      - type: t-fail
        config: {message: soft, on_error: continue}
      - type: t-record
        config: {value: continued}
      - type: t-fail
        config: {message: hard, status: 503}
      - type: t-record
        config: {value: never}
`)
	_, x := fixture()
	err := p.RunRequest(x)
	if got := takeRecorded(); !reflect.DeepEqual(got, []any{"continued"}) {
		t.Fatalf("ran %v", got)
	}
	var ae *ActionError
	var xe *exchange.Error
	if !errors.As(err, &ae) || ae.Action != "t-fail" || ae.Where != "test.yaml:8:9" {
		t.Fatalf("err = %#v", err)
	}
	if !errors.As(err, &xe) || xe.Status != 503 {
		t.Fatalf("status lost: %v", err)
	}
	// Any other failure is a 500 for the proxy.
	p = mustParse(t, "on_http_request:\n  - actions:\n      - type: t-fail\n")
	err = p.RunRequest(x)
	if !errors.As(err, &xe) || xe.Status != 500 || !errors.As(err, &ae) {
		t.Fatalf("err = %#v", err)
	}
}

func TestCloseConnectionAndPanic(t *testing.T) {
	p := mustParse(t, `
on_tcp_connect:
  - expressions: ["inCidrRange(conn.client_ip, '203.0.113.0/24')"]
    actions:
      - type: t-close
on_http_request:
  - actions:
      - type: t-panic
`)
	c, x := fixture()
	if err := p.RunConnect(c); !errors.Is(err, exchange.ErrCloseConnection) {
		t.Fatalf("connect: %v", err)
	}
	err := p.RunRequest(x)
	if err == nil || !contains(err.Error(), "kaboom") {
		t.Fatalf("panic not turned into an error: %v", err)
	}
}

func TestEnforceFalseAndResults(t *testing.T) {
	takeRecorded()
	p := mustParse(t, `
on_http_request:
  - actions:
      - type: t-respond
        config: {status_code: 403, enforce: false}
  - expressions: ["actions.ngrok.respond.would_respond"]
    actions:
      - type: t-record
        config: {value: "${actions.ngrok.respond}"}
`)
	_, x := fixture()
	x.Res = nil
	if err := p.RunRequest(x); err != nil {
		t.Fatal(err)
	}
	if x.Res != nil {
		t.Fatal("dry run answered")
	}
	if got := takeRecorded(); !reflect.DeepEqual(got, []any{map[string]any{"would_respond": true}}) {
		t.Fatalf("recorded %#v", got)
	}
}

func TestVarsAcrossRulesAndPhases(t *testing.T) {
	takeRecorded()
	p := mustParse(t, `
on_tcp_connect:
  - actions:
      - type: t-set-vars
        config: {vars: {from_conn: "${conn.client_port}"}}
on_http_request:
  - actions:
      - type: t-set-vars
        config: {vars: {n: "${2 * 21}", s: "x-${req.method}", l: "${[1, 2]}"}}
  - expressions: ["vars.n == 42", "vars.s == 'x-POST'", "size(vars.l) == 2", "vars.from_conn == 51000"]
    actions:
      - type: t-record
        config: {value: "${vars.n}"}
on_http_response:
  - expressions: ["vars.n == 42"]
    actions:
      - type: t-record
        config: {value: response-sees-vars}
`)
	h := NewPolicyHandle(p, Options{})
	defer h.Close()
	c, x := fixture()
	if err := h.OnConnect(c); err != nil {
		t.Fatal(err)
	}
	if err := h.OnRequest(x); err != nil {
		t.Fatal(err)
	}
	if err := h.OnResponse(x); err != nil {
		t.Fatal(err)
	}
	h.Done(x)
	if got := takeRecorded(); !reflect.DeepEqual(got, []any{int64(42), "response-sees-vars"}) {
		t.Fatalf("recorded %#v", got)
	}
	if _, leaked := c.Vars["n"]; leaked {
		t.Fatal("request vars leaked into the connection")
	}
}

func TestExpressionErrorFailsClosed(t *testing.T) {
	takeRecorded()
	// A runtime error other than a missing key (here an out-of-range
	// index on a present header) stops the phase with the rule's position.
	p := mustParse(t, `
on_http_request:
  - expressions: ["req.headers['x-present'][3] != 'secret'"]
    actions:
      - type: t-record
        config: {value: x}
`)
	_, x := fixture()
	x.Req.Header.Set("X-Present", "a")
	err := p.RunRequest(x)
	if err == nil || !contains(err.Error(), "test.yaml:3:20") {
		t.Fatalf("got %v", err)
	}
	if got := takeRecorded(); len(got) != 0 {
		t.Fatalf("action ran after a failed expression: %v", got)
	}
}

func TestMissingKeyDoesNotMatch(t *testing.T) {
	takeRecorded()
	// ngrok's route-requests example: a rule reading an absent header is
	// skipped and the catch-all rule after it runs.
	p := mustParse(t, `
on_http_request:
  - expressions: ["'beta' in req.headers['x-feature-flags']"]
    actions:
      - type: t-record
        config: {value: beta}
  - actions:
      - type: t-record
        config: {value: stable}
`)
	_, x := fixture()
	if err := p.RunRequest(x); err != nil {
		t.Fatal(err)
	}
	if got := takeRecorded(); len(got) != 1 || got[0] != any("stable") {
		t.Fatalf("recorded %v, want [stable]", got)
	}
}

var hookMu sync.Mutex

// countComputes counts variable computations while f runs.
func countComputes(f func()) map[string]int {
	hookMu.Lock()
	defer hookMu.Unlock()
	var mu sync.Mutex
	counts := map[string]int{}
	computeHook = func(name string) {
		mu.Lock()
		counts[name]++
		mu.Unlock()
	}
	defer func() { computeHook = nil }()
	f()
	return counts
}

func TestLazyEvaluation(t *testing.T) {
	takeRecorded()
	p := mustParse(t, `
on_http_request:
  - expressions: ["req.method == 'POST'", "req.headers['x-api-key'] == ['secret']", "conn.client_ip != ''"]
    actions:
      - type: t-header
        config: {name: X-Api-Key, value: changed}
  - expressions: ["req.headers['x-api-key'] == ['changed']", "req.method == 'POST'", "conn.client_ip != ''"]
    actions:
      - type: t-record
        config: {value: saw-change}
  - expressions: ["false && req.user_agent.is_bot"]
`)
	_, x := fixture()
	counts := countComputes(func() {
		if err := p.RunRequest(x); err != nil {
			t.Fatal(err)
		}
	})
	if got := takeRecorded(); !reflect.DeepEqual(got, []any{"saw-change"}) {
		t.Fatalf("recorded %v", got)
	}
	// req.headers is read twice in rule 1 (one computation), then again
	// after the action changed it (a second one); the connection cannot
	// change, so conn.client_ip is computed once.
	want := map[string]int{"req.method": 2, "req.headers": 2, "conn.client_ip": 1}
	if !reflect.DeepEqual(counts, want) {
		t.Fatalf("computed %v, want %v", counts, want)
	}
}

func TestPolicyCloseOnce(t *testing.T) {
	p := mustParse(t, `
on_http_request:
  - actions:
      - type: t-closer
        config: {id: close-once}
`)
	p.Close()
	p.Close()
	if n := closeCount("close-once"); n != 1 {
		t.Fatalf("closed %d times", n)
	}
}

func TestFailedParseClosesBuiltActions(t *testing.T) {
	_, err := Parse("x.yaml", []byte(`
on_http_request:
  - actions:
      - type: t-closer
        config: {id: failed-parse}
      - type: nope
`))
	if err == nil {
		t.Fatal("no error")
	}
	if n := closeCount("failed-parse"); n != 1 {
		t.Fatalf("closed %d times", n)
	}
}

func contains(s, sub string) bool { return indexOf(s, sub) >= 0 }

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// TestNoStaleValuesAcrossExchanges: pooled activations must not leak one
// exchange's cached variables into the next.
func TestNoStaleValuesAcrossExchanges(t *testing.T) {
	takeRecorded()
	p := mustParse(t, `
on_http_request:
  - actions:
      - type: t-record
        config: {value: "${conn.client_ip} ${req.url.path} ${endpoint.id}"}
`)
	for i, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		_, x := fixture()
		x.Conn.ClientAddr = netip.MustParseAddrPort(ip + ":1000")
		x.Req.Path = "/p" + ip
		x.Endpoint = &exchange.Endpoint{ID: ip}
		x.Res = nil
		if err := p.RunRequest(x); err != nil {
			t.Fatal(err)
		}
		got := takeRecorded()
		want := ip + " /p" + ip + " " + ip
		if len(got) != 1 || got[0] != want {
			t.Fatalf("exchange %d recorded %v, want %q", i, got, want)
		}
	}
}
