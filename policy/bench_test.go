package policy

import (
	"net/http"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time. Benchmarks report it per
// op next to wall time: on a shared, loaded machine wall time mostly
// measures waiting for a CPU.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	if d := cpuTime() - start; d > 0 && b.N > 0 {
		b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func init() {
	// t-rewrite sets the request path from a template, like url-rewrite.
	Register(Spec{Type: "t-rewrite", Phases: []Phase{OnHTTPRequest}, New: func(c *Config) (Action, error) {
		var cfg struct {
			To Template `yaml:"to"`
		}
		if err := c.Decode(&cfg); err != nil {
			return nil, err
		}
		return actionFunc(func(s *State) error {
			p, err := cfg.To.Eval(s)
			if err != nil {
				return err
			}
			s.X.Req.Path = p
			return nil
		}), nil
	}})
}

// BenchmarkOneRule: one rule with a path, a header and an IP condition.
func BenchmarkOneRule(b *testing.B) {
	p := mustParse(b, `
on_http_request:
  - expressions:
      - "req.url.path.startsWith('/api') && 'x-api-key' in req.headers && inCidrRange(conn.client_ip, '203.0.113.0/24')"
`)
	_, x := fixture()
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		if err := p.RunRequest(x); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}

const fiveRules = `
on_http_request:
  - name: block admin
    expressions: ["req.url.path.startsWith('/admin')", "!inCidrRange(conn.client_ip, '10.0.0.0/8')"]
    actions:
      - type: t-respond
        config: {status_code: 403}
  - name: api key
    expressions: ["req.url.path.startsWith('/api')", "!hasReqHeader('x-api-key')"]
    actions:
      - type: t-respond
        config: {status_code: 401}
  - name: tag
    actions:
      - type: t-header
        config: {name: X-Client-IP, value: "${conn.client_ip}"}
  - name: rewrite v1
    expressions: ["req.url.path.startsWith('/api/v1/')"]
    actions:
      - type: t-rewrite
        config: {to: "/v1-backend${req.url.raw_path}"}
on_http_response:
  - name: server header
    expressions: ["res.status_code >= 400"]
    actions:
      - type: t-header
        config: {name: X-Error, value: "1"}
`

// BenchmarkFiveRules: a realistic policy per request through the Handle:
// pin, request phase (5 rule checks, a header and a rewrite), response
// phase, release.
func BenchmarkFiveRules(b *testing.B) {
	h := NewPolicyHandle(mustParse(b, fiveRules), Options{})
	defer h.Close()
	c, x := fixture()
	res := x.Res
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		x.Req.Path = "/api/v1/a%20b"
		x.Req.Header.Del("X-Client-Ip")
		x.Res = nil
		x.Conn = c
		if err := h.OnRequest(x); err != nil {
			b.Fatal(err)
		}
		x.Res = res
		if err := h.OnResponse(x); err != nil {
			b.Fatal(err)
		}
		h.Done(x)
	}
	reportCPU(b, start)
	if x.Req.Header.Get("X-Client-Ip") != "203.0.113.7" || x.Req.Path != "/v1-backend/api/v1/a%20b" {
		b.Fatalf("policy did not act: %v %q", x.Req.Header, x.Req.Path)
	}
}

// BenchmarkHeaderLookup isolates the case-insensitive header map.
func BenchmarkHeaderLookup(b *testing.B) {
	p := mustParse(b, `
on_http_request:
  - expressions: ["req.headers['x-api-key'][0] == 'secret'"]
`)
	_, x := fixture()
	x.Req.Header = http.Header{"X-Api-Key": {"secret"}}
	b.ReportAllocs()
	for b.Loop() {
		if err := p.RunRequest(x); err != nil {
			b.Fatal(err)
		}
	}
}
