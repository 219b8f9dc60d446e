package l4_test

import (
	"context"
	"net"
	"time"

	"github.com/sluicehq/sluice/proxy/l4"
)

// A TLS passthrough listener: route on the SNI, then pipe the untouched
// stream (ClientHello included) to the chosen backend. (Compiled, not run:
// it serves forever.)
func ExamplePeekClientHello() {
	backends := map[string]string{"db.example.com": "10.0.0.5:5432"}
	ctx := context.Background()
	l, err := net.Listen("tcp", ":8443")
	if err != nil {
		return
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			hello, replay, err := l4.PeekClientHello(c, 5*time.Second)
			addr, ok := "", false
			if err == nil {
				addr, ok = backends[hello.ServerName]
			}
			if !ok {
				replay.Close()
				return
			}
			up, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				replay.Close()
				return
			}
			l4.Pipe(ctx, replay, up, 10*time.Minute) // closes both
		}()
	}
}
