package policy

// Test-only actions and fixtures. The real actions live in policy/actions;
// these exercise the engine's contract without depending on them.

import (
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/exchange"
)

var (
	recMu    sync.Mutex
	recorded []any
	closes   sync.Map // id string -> *atomic.Int64
)

func record(v any) {
	recMu.Lock()
	recorded = append(recorded, v)
	recMu.Unlock()
}

func takeRecorded() []any {
	recMu.Lock()
	defer recMu.Unlock()
	out := recorded
	recorded = nil
	return out
}

type headerAction struct {
	Name  string   `yaml:"name"`
	Value Template `yaml:"value"`
}

func (a *headerAction) Run(s *State) error {
	v, err := a.Value.Eval(s)
	if err != nil {
		return err
	}
	if s.Phase == OnHTTPResponse {
		s.X.Res.Header.Set(a.Name, v)
	} else {
		s.X.Req.Header.Set(a.Name, v)
	}
	return nil
}

type respondAction struct {
	Status  int      `yaml:"status_code"`
	Body    Template `yaml:"body"`
	Enforce *bool    `yaml:"enforce"`
	enforce bool
}

func (a *respondAction) Run(s *State) error {
	body, err := a.Body.Eval(s)
	if err != nil {
		return err
	}
	if !a.enforce {
		s.SetResult("respond", map[string]any{"would_respond": true})
		return nil
	}
	s.X.Res = &exchange.Response{StatusCode: a.Status, Header: http.Header{}, ContentLength: int64(len(body)),
		Body: io.NopCloser(strings.NewReader(body)), Generated: true}
	return nil
}

type recordAction struct {
	Value Template `yaml:"value"`
}

func (a *recordAction) Run(s *State) error {
	v, err := a.Value.EvalValue(s)
	if err != nil {
		return err
	}
	record(v)
	return nil
}

type failAction struct {
	Message string `yaml:"message"`
	Status  int    `yaml:"status"`
}

func (a *failAction) Run(s *State) error {
	if a.Status != 0 {
		return exchange.NewError(a.Status, a.Message, nil)
	}
	return errors.New(a.Message)
}

type setVarAction struct {
	Vars map[string]Template `yaml:"vars"`
}

func (a *setVarAction) Run(s *State) error {
	for k, t := range a.Vars {
		v, err := t.EvalValue(s)
		if err != nil {
			return err
		}
		s.SetVar(k, v)
	}
	return nil
}

type closerAction struct{ id string }

func (a *closerAction) Run(s *State) error { return nil }
func (a *closerAction) Close() error {
	c, _ := closes.LoadOrStore(a.id, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
	return nil
}

func closeCount(id string) int64 {
	c, ok := closes.Load(id)
	if !ok {
		return 0
	}
	return c.(*atomic.Int64).Load()
}

type allTypes struct {
	S     string              `yaml:"s"`
	B     bool                `yaml:"b"`
	I     int                 `yaml:"i"`
	I64   int64               `yaml:"i64"`
	U     uint16              `yaml:"u"`
	F     float64             `yaml:"f"`
	D     time.Duration       `yaml:"d"`
	L     []string            `yaml:"l"`
	M     map[string]int      `yaml:"m"`
	P     *int                `yaml:"p"`
	N     nested              `yaml:"n"`
	NP    *nested             `yaml:"np"`
	T     Template            `yaml:"t"`
	TP    *Template           `yaml:"tp"`
	X     *Expr               `yaml:"x"`
	Any   any                 `yaml:"any"`
	TM    map[string]Template `yaml:"tm"`
	Embed `yaml:",inline"`
}

type nested struct {
	A string `yaml:"a"`
}

type Embed struct {
	E string `yaml:"e"`
}

func init() {
	Register(Spec{Type: "t-header", Phases: []Phase{OnHTTPRequest, OnHTTPResponse}, New: func(c *Config) (Action, error) {
		a := &headerAction{}
		if err := c.Decode(a); err != nil {
			return nil, err
		}
		if a.Name == "" {
			return nil, c.Errorf(c.Node, "name is required")
		}
		return a, nil
	}})
	Register(Spec{Type: "t-respond", Terminating: true, Phases: []Phase{OnHTTPRequest, OnHTTPResponse}, New: func(c *Config) (Action, error) {
		a := &respondAction{Status: 200}
		if err := c.Decode(a); err != nil {
			return nil, err
		}
		a.enforce = c.Enforce
		return a, nil
	}})
	Register(Spec{Type: "t-record", New: func(c *Config) (Action, error) {
		a := &recordAction{}
		return a, c.Decode(a)
	}})
	Register(Spec{Type: "t-fail", New: func(c *Config) (Action, error) {
		a := &failAction{Message: "boom"}
		return a, c.Decode(a)
	}})
	Register(Spec{Type: "t-close", Terminating: true, New: func(c *Config) (Action, error) {
		return actionFunc(func(*State) error { return exchange.ErrCloseConnection }), c.Decode(&struct{}{})
	}})
	Register(Spec{Type: "t-panic", New: func(c *Config) (Action, error) {
		return actionFunc(func(*State) error { panic("kaboom") }), nil
	}})
	Register(Spec{Type: "t-set-vars", New: func(c *Config) (Action, error) {
		a := &setVarAction{}
		return a, c.Decode(a)
	}})
	Register(Spec{Type: "t-closer", New: func(c *Config) (Action, error) {
		var cfg struct {
			ID string `yaml:"id"`
		}
		if err := c.Decode(&cfg); err != nil {
			return nil, err
		}
		return &closerAction{id: cfg.ID}, nil
	}})
	Register(Spec{Type: "t-regex", New: func(c *Config) (Action, error) {
		var cfg struct {
			Pattern string `yaml:"pattern"`
		}
		if err := c.Decode(&cfg); err != nil {
			return nil, err
		}
		if strings.Contains(cfg.Pattern, "(") && !strings.Contains(cfg.Pattern, ")") {
			return nil, c.Errorf(nil, "bad regex %q: missing )", cfg.Pattern)
		}
		return actionFunc(func(*State) error { return nil }), nil
	}})
	Register(Spec{Type: "t-all", New: func(c *Config) (Action, error) {
		var cfg allTypes
		if err := c.Decode(&cfg); err != nil {
			return nil, err
		}
		return actionFunc(func(*State) error { record(cfg); return nil }), nil
	}})
}

type actionFunc func(*State) error

func (f actionFunc) Run(s *State) error { return f(s) }

// fixture returns a connection and exchange with known values.
func fixture() (*exchange.Conn, *exchange.Exchange) {
	ep := &exchange.Endpoint{ID: "ep_app", URL: "https://app.example.com:443", Scheme: "https", Host: "app.example.com", Port: 443}
	c := &exchange.Conn{
		ID:         "c1",
		ClientAddr: netip.MustParseAddrPort("203.0.113.7:51000"),
		PeerAddr:   netip.MustParseAddrPort("203.0.113.7:51000"),
		ServerAddr: netip.MustParseAddrPort("127.0.0.1:8443"),
		Start:      time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		TLS: &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256,
			ServerName: "app.example.com", NegotiatedProtocol: "h2", HandshakeComplete: true},
		SNI:      "app.example.com",
		Endpoint: ep,
	}
	x := &exchange.Exchange{
		ID: "r1", Start: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC), Conn: c, Endpoint: ep,
		Req: &exchange.Request{
			Method: "POST", Scheme: "https", Host: "app.example.com:8443", Path: "/api/v1/a%20b", RawQuery: "q=1&q=2&x=y",
			Proto: "HTTP/1.1", ContentLength: 42, Body: http.NoBody,
			Header: http.Header{
				"X-Api-Key":        {"secret"},
				"Content-Type":     {"application/json; charset=utf-8"},
				"Content-Encoding": {"gzip, br"},
				"Cookie":           {"session=abc; theme=dark; session=def"},
				"User-Agent":       {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"},
				"Location":         {"/next"},
			},
			Trailer: http.Header{"X-Checksum": {"abc"}},
		},
		Res: &exchange.Response{StatusCode: 404, ContentLength: 7, Header: http.Header{
			"Content-Type": {"text/html"},
			"Set-Cookie":   {"id=1; Path=/; HttpOnly; Secure; SameSite=Lax", "id=2; Path=/app/x", "other=v; Max-Age=60"},
			"Location":     {"/moved"},
			"X-Upstream":   {"a", "b"},
		}},
	}
	return c, x
}

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return p
}
