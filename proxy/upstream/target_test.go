package upstream

import (
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in                                   string
		scheme, network, addr, sni, str, url string
	}{
		{"8080", "http", "tcp", "127.0.0.1:8080", "", "http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{" 8080 ", "http", "tcp", "127.0.0.1:8080", "", "http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"localhost:3000", "http", "tcp", "localhost:3000", "", "http://localhost:3000", "http://localhost:3000"},
		{":3000", "http", "tcp", "127.0.0.1:3000", "", "http://127.0.0.1:3000", "http://127.0.0.1:3000"},
		{"[::1]:9000", "http", "tcp", "[::1]:9000", "", "http://[::1]:9000", "http://[::1]:9000"},
		{"http://app.internal", "http", "tcp", "app.internal:80", "", "http://app.internal:80", "http://app.internal:80"},
		{"HTTP://App.Internal:81/", "http", "tcp", "App.Internal:81", "", "http://App.Internal:81", "http://App.Internal:81"},
		{"https://api.example.com", "https", "tcp", "api.example.com:443", "api.example.com", "https://api.example.com:443", "https://api.example.com:443"},
		{"https://10.0.0.1:8443", "https", "tcp", "10.0.0.1:8443", "10.0.0.1", "https://10.0.0.1:8443", "https://10.0.0.1:8443"},
		{"h2c://grpc:50051", "h2c", "tcp", "grpc:50051", "", "h2c://grpc:50051", "h2c://grpc:50051"},
		{"unix:/run/app.sock", "unix", "unix", "/run/app.sock", "", "unix:/run/app.sock", "unix:/run/app.sock"},
		{"unix:///run/app.sock", "unix", "unix", "/run/app.sock", "", "unix:/run/app.sock", "unix:/run/app.sock"},
		{"unix:app.sock", "unix", "unix", "app.sock", "", "unix:app.sock", "unix:app.sock"},
		{"tcp://db:5432", "tcp", "tcp", "db:5432", "", "tcp://db:5432", "tcp://db:5432"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTarget(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got.Scheme != tt.scheme || got.Network != tt.network || got.Addr != tt.addr || got.ServerName != tt.sni {
				t.Errorf("got scheme=%q network=%q addr=%q sni=%q", got.Scheme, got.Network, got.Addr, got.ServerName)
			}
			if got.String() != tt.str {
				t.Errorf("String() = %q, want %q", got.String(), tt.str)
			}
			if got.URL.String() != tt.url {
				t.Errorf("URL = %q, want %q", got.URL, tt.url)
			}
			if !got.Healthy() || got.InFlight() != 0 {
				t.Errorf("new target not healthy and idle")
			}
		})
	}
}

func TestParseTargetErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty address"},
		{"0", "invalid port"},
		{"70000", "invalid port"},
		{"host:port", "invalid port"},
		{"host:", "invalid port"},
		{"justahost", "want a port, host:port or a URL"},
		{"ftp://x:21", `unsupported scheme "ftp"`},
		{"http://", "missing host"},
		{"http://:80", "missing host"},
		{"http://x:99999", "invalid port"},
		{"http://x:", "empty port"},
		{"http://user:pw@x", "credentials"},
		{"tcp://db", "tcp:// needs a port"},
		{"tcp://db:5432/path", "no path"},
		{"http://x:1/base", "takes no path or query"},
		{"https://x/?q=1", "takes no path or query"},
		{"unix:", "needs a socket path"},
		{"http://[::1", "missing ']'"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseTarget(tt.in)
			if err == nil {
				t.Fatalf("no error")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "upstream") {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no upstream URLs"},
		{Config{URLs: []string{"8080", "ftp://x"}}, "urls[1]"},
		{Config{URLs: []string{"8080", "127.0.0.1:8080"}}, "duplicates urls[0]"},
		{Config{URLs: []string{"8080"}, Balance: "random"}, `unknown policy "random"`},
		{Config{URLs: []string{"8080"}, HealthCheck: &HealthCheck{Path: "healthz"}}, "must start with /"},
		{Config{URLs: []string{"8080"}, HealthCheck: &HealthCheck{Interval: -1}}, "negative"},
		{Config{URLs: []string{"8080"}, Passive: Passive{MaxFails: -1}}, "negative"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want error containing %q", tt.cfg, err, tt.want)
		}
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"8080", "host:1", "http://x", "https://[::1]:443/p", "unix:/s", "tcp://h:1", "h2c://g", "%zz", "http://a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			return
		}
		if tg.Addr == "" || tg.URL == nil || tg.Network == "" {
			t.Fatalf("%q parsed to incomplete target %+v", s, tg)
		}
	})
}
