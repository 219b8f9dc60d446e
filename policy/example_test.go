package policy_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/policy"
)

// A policy is parsed once; its phases then run per connection, request and
// response. Errors name the file, line and column.
func ExampleParse() {
	_, err := policy.Parse("policy.yaml", []byte(`
on_http_request:
  - expressions:
      - "req.url.path.startsWith('/admin') && !inCidrRange(conn.client_ip, 10)"
`))
	fmt.Println(err)

	p, err := policy.Parse("policy.yaml", []byte(`
on_http_request:
  - expressions: ["req.headers['x-api-key'] == ['secret']"]
`))
	if err != nil {
		panic(err)
	}
	conn := &exchange.Conn{ClientAddr: netip.MustParseAddrPort("192.0.2.1:40000"), Start: time.Now()}
	x := &exchange.Exchange{Conn: conn, Req: &exchange.Request{
		Method: "GET", Scheme: "https", Host: "app.example.com", Path: "/",
		Header: http.Header{"X-Api-Key": {"secret"}}, Body: http.NoBody,
	}}
	fmt.Println(p.RunRequest(x), p.Hash() != "")
	// Output:
	// policy.yaml:4:48: CEL: found no matching overload for 'inCidrRange' applied to '(string, int)'
	// <nil> true
}
