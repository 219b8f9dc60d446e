package cli

import (
	"bytes"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/config"
)

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		pos    []string
		listen string
		v      bool
	}{
		{[]string{"9000"}, []string{"9000"}, "d", false},
		{[]string{"--listen", ":1", "9000"}, []string{"9000"}, ":1", false},
		{[]string{"9000", "--listen", ":1"}, []string{"9000"}, ":1", false},
		{[]string{"9000", "-v", "--listen=:2", "x"}, []string{"9000", "x"}, ":2", true},
		{[]string{"-v", "--", "--listen", "9000"}, []string{"--listen", "9000"}, "d", true},
		{[]string{"9000", "--", "-v"}, []string{"9000", "-v"}, "d", false},
		{nil, nil, "d", false},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		listen := fs.String("listen", "d", "")
		v := fs.Bool("v", false, "")
		pos, err := parseInterspersed(fs, tc.args)
		if err != nil || !reflect.DeepEqual(pos, tc.pos) || *listen != tc.listen || *v != tc.v {
			t.Errorf("%q: pos %q listen %q v %v err %v; want %q %q %v", tc.args, pos, *listen, *v, err, tc.pos, tc.listen, tc.v)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := parseInterspersed(fs, []string{"9000", "--nope"}); err == nil {
		t.Error("unknown flag after positional: no error")
	}
}

func agentConfig(t *testing.T, kind string, args ...string) (*config.Config, error) {
	t.Helper()
	var f agentFlags
	fs := newAgentFlagSet(kind, &f, io.Discard)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		t.Fatalf("flags %q: %v", args, err)
	}
	return f.toConfig(pos[0])
}

func TestAgentConfig(t *testing.T) {
	c, err := agentConfig(t, "http", "9000")
	if err != nil {
		t.Fatal(err)
	}
	e := c.Endpoints[0]
	if e.URL != "http://:8000" || e.Listen != "127.0.0.1:8000" || e.Upstream[0] != "http://127.0.0.1:9000" || e.TrafficPolicyFile != "" || c.Admin != "" {
		t.Errorf("sluice http 9000 = %+v", e)
	}

	c, err = agentConfig(t, "http", "h2c://127.0.0.1:50051", "--url", "https://app.example.com", "--tls-cert", "/c.pem", "--tls-key", "/k.pem",
		"--trusted-proxies", "10.0.0.0/8,192.168.0.1", "--access-log", "--max-body-bytes", "1MiB", "--dial-timeout", "3s",
		"--traffic-policy-file", "/p.yaml", "--admin", "127.0.0.1:4040", "--log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	e = c.Endpoints[0]
	if e.URL != "https://app.example.com" || e.Scheme != "https" || e.TLS[0].Cert != "/c.pem" || e.Upstream[0] != "h2c://127.0.0.1:50051" || e.TrafficPolicyFile != "/p.yaml" {
		t.Errorf("endpoint = %+v", e)
	}
	if len(c.Trusted) != 2 || c.Log.AccessLog != "stdout" || c.Limits.MaxBodyBytes != 1<<20 || c.Limits.DialTimeout.D() != 3*time.Second || c.Admin != "127.0.0.1:4040" || c.Log.Level != "debug" {
		t.Errorf("config = %+v", c)
	}

	c, err = agentConfig(t, "tcp", "5432", "--listen", "0.0.0.0:15432")
	if err != nil {
		t.Fatal(err)
	}
	if e := c.Endpoints[0]; e.URL != "tcp://:15432" || e.Upstream[0] != "tcp://127.0.0.1:5432" {
		t.Errorf("tcp endpoint = %+v", e)
	}
	c, err = agentConfig(t, "tls", "db:443", "--url", "tls://db.example.com:443")
	if err != nil {
		t.Fatal(err)
	}
	if e := c.Endpoints[0]; e.URL != "tls://db.example.com:443" || e.Upstream[0] != "tcp://db:443" {
		t.Errorf("tls endpoint = %+v", e)
	}

	for _, tc := range []struct {
		kind string
		args []string
		want string
	}{
		{"http", []string{"9000", "--server", "x:1"}, "tunnels are not available"},
		{"http", []string{"9000", "--geoip-db", "a.mmdb"}, "GeoIP"},
		{"http", []string{"9000", "--url", "tcp://x:1"}, "serves http:// URLs"},
		{"tcp", []string{"9000", "--url", "http://x"}, "serves tcp:// URLs"},
		{"http", []string{"9000", "--url", "http://x/path"}, "no path"},
		{"http", []string{"9000", "--tls-cert", "c"}, "go together"},
		{"http", []string{"9000", "--tls-cert", "c", "--tls-key", "k"}, "need an https --url"},
		{"http", []string{"9000", "--listen", "8000"}, "want HOST:PORT"},
		{"http", []string{"9000", "--log-level", "loud"}, "unknown level"},
		{"http", []string{"9000", "--url", "https://billing.internal"}, "internal endpoint"},
	} {
		_, err := agentConfig(t, tc.kind, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: err %v, want %q", tc.kind, tc.args, err, tc.want)
		}
	}
}

func TestMainUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"bogus"}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "Usage:") {
		t.Errorf("bogus: %d %q", code, errb.String())
	}
	out.Reset()
	if code := Main([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "sluice dev (go") {
		t.Errorf("version: %d %q", code, out.String())
	}
}
