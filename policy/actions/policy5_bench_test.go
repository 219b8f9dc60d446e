package actions

import (
	"net/http"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/policy"
)

// BenchmarkPolicy5 runs bench/policy5.yaml (the policy of make bench's
// overhead row) with the real actions on a request like the benchmark's:
// the engine plus add-headers, interpolation and url-rewrite per request.
func BenchmarkPolicy5(b *testing.B) {
	src, err := os.ReadFile("../../bench/policy5.yaml")
	if err != nil {
		b.Fatal(err)
	}
	p, err := policy.Parse("policy5.yaml", src)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	conn := &exchange.Conn{
		ClientAddr: netip.MustParseAddrPort("127.0.0.1:40000"),
		ClientIP:   "127.0.0.1", // formatted once per connection, as the proxy does
		ServerAddr: netip.MustParseAddrPort("127.0.0.1:8080"),
		Start:      time.Now(),
	}
	ep := &exchange.Endpoint{ID: "bench", URL: "http://127.0.0.1:8080", Scheme: "http", Port: 8080}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := exchange.Request{
			Method: "GET", Scheme: "http", Host: "127.0.0.1:8080", Path: "/1k", Proto: "HTTP/1.1",
			Header: http.Header{"X-Bench": {"1"}, "User-Agent": {"wrk"}}, Body: http.NoBody,
		}
		x := &exchange.Exchange{Conn: conn, Endpoint: ep, Req: &req}
		if err := p.RunRequest(x); err != nil {
			b.Fatal(err)
		}
	}
}
