package actions

import (
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/policy"
	"go.yaml.in/yaml/v3"
)

// build provisions one action from its YAML config the way the engine does.
func build(t *testing.T, typ string, phase policy.Phase, config string) (policy.Action, error) {
	t.Helper()
	spec, ok := policy.Lookup(typ)
	if !ok {
		t.Fatalf("action %q not registered", typ)
	}
	c := &policy.Config{Type: typ, Phase: phase}
	if config != "" {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(config), &doc); err != nil {
			t.Fatalf("bad test YAML: %v", err)
		}
		c.Node = doc.Content[0]
	}
	a, err := spec.New(c)
	if err == nil {
		if cl, ok := a.(policy.Closer); ok {
			t.Cleanup(func() { cl.Close() })
		}
	}
	return a, err
}

// mustBuild is build for configs that must load.
func mustBuild(t *testing.T, typ string, phase policy.Phase, config string) policy.Action {
	t.Helper()
	a, err := build(t, typ, phase, config)
	if err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	return a
}

// newState makes a request-phase state for rawURL from client.
func newState(t *testing.T, phase policy.Phase, method, rawURL, client string, hdr ...string) *policy.State {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Add(hdr[i], hdr[i+1])
	}
	conn := &exchange.Conn{
		ID:         "conn_1",
		ClientAddr: netip.MustParseAddrPort(client),
		Start:      time.Date(2024, 6, 24, 15, 30, 0, 0, time.UTC),
		Endpoint:   &exchange.Endpoint{ID: "ep_test", URL: u.Scheme + "://" + u.Host, Scheme: u.Scheme},
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	x := &exchange.Exchange{
		ID:       "req_1",
		Conn:     conn,
		Endpoint: conn.Endpoint,
		Req: &exchange.Request{
			Method: method, Scheme: u.Scheme, Host: u.Host, Path: path, RawQuery: u.RawQuery,
			Proto: "HTTP/1.1", Header: h, ContentLength: 0, Body: http.NoBody,
		},
	}
	s := &policy.State{Phase: phase, Conn: conn, X: x}
	if phase == policy.OnTCPConnect {
		s.X = nil
	}
	return s
}

// withResponse attaches an upstream response to s.
func withResponse(s *policy.State, status int, body string, hdr ...string) *policy.State {
	h := http.Header{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Add(hdr[i], hdr[i+1])
	}
	s.X.Res = &exchange.Response{StatusCode: status, Header: h, ContentLength: int64(len(body)),
		Body: io.NopCloser(strings.NewReader(body))}
	s.Phase = policy.OnHTTPResponse
	return s
}

// result reads actions.ngrok.<name> as the engine stores it, through CEL.
func result(t *testing.T, s *policy.State, expr string) any {
	t.Helper()
	c := &policy.Config{}
	e, err := c.CompileExpr(expr, nil)
	if err != nil {
		t.Fatalf("compile %s: %v", expr, err)
	}
	v, err := e.Eval(s)
	if err != nil {
		t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

func body(t *testing.T, r *exchange.Response) string {
	t.Helper()
	if r.Body == nil {
		return ""
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantErr checks that err mentions every fragment.
func wantErr(t *testing.T, err error, frags ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", frags)
	}
	for _, f := range frags {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
}
