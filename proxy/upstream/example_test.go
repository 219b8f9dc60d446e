package upstream_test

import (
	"errors"
	"fmt"
	"net"

	"github.com/sluicehq/sluice/proxy/upstream"
)

func ExampleParseTarget() {
	for _, s := range []string{"8080", "https://api.example.com", "unix:/run/app.sock", "h2c://grpc:50051"} {
		t, err := upstream.ParseTarget(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s %s %s sni=%q\n", t, t.Network, t.Addr, t.ServerName)
	}
	_, err := upstream.ParseTarget("ftp://files:21")
	fmt.Println(err)
	// Output:
	// http://127.0.0.1:8080 tcp 127.0.0.1:8080 sni=""
	// https://api.example.com:443 tcp api.example.com:443 sni="api.example.com"
	// unix:/run/app.sock unix /run/app.sock sni=""
	// h2c://grpc:50051 tcp grpc:50051 sni=""
	// upstream "ftp://files:21": unsupported scheme "ftp" (want http, https, h2c, unix or tcp)
}

// The proxy's attempt loop: pick, Begin, dial, End with the connection
// error so failures feed passive ejection, and retry elsewhere.
func ExamplePool_Pick() {
	pool, err := upstream.New(upstream.Config{
		URLs:    []string{"127.0.0.1:1", "127.0.0.1:2"}, // nothing listens there
		Balance: upstream.LeastRequests,
	}, nil)
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	var tried []*upstream.Target
	for {
		t, err := pool.Pick(tried)
		if errors.Is(err, upstream.ErrNoHealthyUpstream) {
			fmt.Println("all upstreams failed")
			return
		}
		pool.Begin(t)
		c, err := net.Dial(t.Network, t.Addr)
		pool.End(t, err)
		if err == nil {
			c.Close()
			return
		}
		tried = append(tried, t)
	}
	// Output: all upstreams failed
}
