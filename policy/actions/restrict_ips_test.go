package actions

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/policy"
	"go.yaml.in/yaml/v3"
)

func TestRestrictIPs(t *testing.T) {
	const cfg = `
enforce: true
allow: [1.1.1.1/32, 10.0.0.0/8, "2001:db8::/32", 192.0.2.9]
deny: [10.6.6.0/24, "e680:5791:be4c:5739:d959:7b94:6d54:d4b4/128"]
`
	tests := []struct {
		client  string
		allowed bool
		matched string
	}{
		{"1.1.1.1:1000", true, "1.1.1.1/32"},
		{"10.1.2.3:1000", true, "10.0.0.0/8"},
		{"10.6.6.6:1000", false, "10.6.6.0/24"},
		{"8.8.8.8:1000", false, ""},
		{"[2001:db8::1]:443", true, "2001:db8::/32"},
		{"[e680:5791:be4c:5739:d959:7b94:6d54:d4b4]:1", false, "e680:5791:be4c:5739:d959:7b94:6d54:d4b4/128"},
		{"[::ffff:10.1.2.3]:1000", true, "10.0.0.0/8"}, // IPv4-mapped
		{"192.0.2.9:1", true, "192.0.2.9/32"},
	}
	a := mustBuild(t, "restrict-ips", policy.OnHTTPRequest, cfg)
	tcp := mustBuild(t, "restrict-ips", policy.OnTCPConnect, cfg)
	for _, tt := range tests {
		t.Run(tt.client, func(t *testing.T) {
			s := newState(t, policy.OnHTTPRequest, "GET", "https://example.com/", tt.client)
			if err := a.Run(s); err != nil {
				t.Fatal(err)
			}
			if denied := s.X.Res != nil && s.X.Res.StatusCode == 403; denied == tt.allowed {
				t.Errorf("allowed=%v, response %+v", tt.allowed, s.X.Res)
			}
			wantAction := "deny"
			if tt.allowed {
				wantAction = "allow"
			}
			if got := result(t, s, "actions.ngrok.restrict_ips.action"); got != wantAction {
				t.Errorf("action = %v", got)
			}
			if got := result(t, s, "actions.ngrok.restrict_ips.matched_cidr"); got != tt.matched {
				t.Errorf("matched_cidr = %v, want %q", got, tt.matched)
			}
			ts := newState(t, policy.OnTCPConnect, "", "tcp://x:1", tt.client)
			err := tcp.Run(ts)
			if closed := errors.Is(err, exchange.ErrCloseConnection); closed == tt.allowed {
				t.Errorf("tcp: allowed=%v, err %v", tt.allowed, err)
			}
		})
	}
}

func TestRestrictIPsDryRun(t *testing.T) {
	a := mustBuild(t, "restrict-ips", policy.OnHTTPRequest, `{enforce: false, deny: [0.0.0.0/0]}`)
	s := newState(t, policy.OnHTTPRequest, "GET", "https://example.com/", "8.8.8.8:1")
	if err := a.Run(s); err != nil || s.X.Res != nil {
		t.Fatalf("dry run acted: err %v res %+v", err, s.X.Res)
	}
	if got := result(t, s, "actions.ngrok.restrict_ips.action"); got != "deny" {
		t.Errorf("action = %v", got)
	}
}

func TestRestrictIPsOnlyDeny(t *testing.T) {
	a := mustBuild(t, "restrict-ips", policy.OnHTTPRequest, `deny: ["${'203.0.113.0/24'}"]`)
	for client, allowed := range map[string]bool{"203.0.113.5:1": false, "198.51.100.1:1": true} {
		s := newState(t, policy.OnHTTPRequest, "GET", "https://example.com/", client)
		if err := a.Run(s); err != nil {
			t.Fatal(err)
		}
		if (s.X.Res == nil) != allowed {
			t.Errorf("%s: allowed=%v res=%+v", client, allowed, s.X.Res)
		}
	}
}

func TestRestrictIPsConfigErrors(t *testing.T) {
	tests := []struct{ config, want string }{
		{`enforce: true`, "at least one CIDR"},
		{`allow: [10.0.0.0/33]`, `allow[0]: "10.0.0.0/33" is not a CIDR`},
		{`deny: [1.1.1.1, banana]`, `deny[1]: "banana"`},
		{`{enforce: true, ip_policies: [ipp_1yjqdrIBwgciY2I9zH2EelgBbJF]}`, "ip_policies refers to IP Policies hosted by ngrok"},
		{`{allow: [1.1.1.1], enforce: maybe}`, "true or false"},
	}
	for _, tt := range tests {
		_, err := build(t, "restrict-ips", policy.OnHTTPRequest, tt.config)
		wantErr(t, err, tt.want)
	}
}

func TestRestrictIPsWarnsAboutOneFamily(t *testing.T) {
	for cfg, warn := range map[string]bool{
		`allow: [1.1.1.1/32, 10.0.0.0/8]`:     true,
		`allow: ["2001:db8::/32"]`:            true,
		`allow: [1.1.1.1/32, "::/0"]`:         false,
		`deny: [1.1.1.1/32]`:                  false,
		`allow: ["${'1.1.1.1'}", 10.0.0.0/8]`: false,
	} {
		var buf bytes.Buffer
		spec, _ := policy.Lookup("restrict-ips")
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(cfg), &doc); err != nil {
			t.Fatal(err)
		}
		c := &policy.Config{Type: "restrict-ips", Phase: policy.OnHTTPRequest, Node: doc.Content[0],
			Log: slog.New(slog.NewTextHandler(&buf, nil))}
		if _, err := spec.New(c); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(buf.String(), "other IP family"); got != warn {
			t.Errorf("%s: warned=%v, want %v (%q)", cfg, got, warn, buf.String())
		}
	}
}
