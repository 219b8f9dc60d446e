package actions

import (
	"errors"
	"testing"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/policy"
)

func TestDeny(t *testing.T) {
	for _, tt := range []struct {
		config string
		status int
	}{{``, 403}, {`status_code: 404`, 404}, {`{status_code: 451}`, 451}} {
		a := mustBuild(t, "deny", policy.OnHTTPRequest, tt.config)
		s := newState(t, policy.OnHTTPRequest, "GET", "https://example.com/", "127.0.0.1:1")
		if err := a.Run(s); err != nil {
			t.Fatal(err)
		}
		if s.X.Res == nil || s.X.Res.StatusCode != tt.status || body(t, s.X.Res) != "" {
			t.Errorf("%q: response %+v", tt.config, s.X.Res)
		}
	}
}

func TestDenyTCP(t *testing.T) {
	a := mustBuild(t, "deny", policy.OnTCPConnect, ``)
	s := newState(t, policy.OnTCPConnect, "", "tcp://1.tcp.example:2000", "127.0.0.1:1")
	if err := a.Run(s); !errors.Is(err, exchange.ErrCloseConnection) {
		t.Fatalf("err = %v, want ErrCloseConnection", err)
	}
	_, err := build(t, "deny", policy.OnTCPConnect, `status_code: 403`)
	wantErr(t, err, "no meaning in on_tcp_connect")
}

func TestDenyConfigErrors(t *testing.T) {
	_, err := build(t, "deny", policy.OnHTTPRequest, `status_code: 1000`)
	wantErr(t, err, "status_code: 1000")
	_, err = build(t, "deny", policy.OnHTTPRequest, `code: 403`)
	wantErr(t, err, `unknown field "code"`)
}

func TestCloseConnection(t *testing.T) {
	a := mustBuild(t, "close-connection", policy.OnHTTPRequest, ``)
	s := newState(t, policy.OnHTTPRequest, "GET", "https://example.com/dc", "127.0.0.1:1")
	if err := a.Run(s); !errors.Is(err, exchange.ErrCloseConnection) {
		t.Fatalf("err = %v", err)
	}
	_, err := build(t, "close-connection", policy.OnHTTPRequest, `{x: 1}`)
	wantErr(t, err, `unknown field "x"`)
}
