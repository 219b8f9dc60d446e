package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"

	"golang.org/x/net/http2"
)

// h2cClient speaks HTTP/2 in cleartext (prior knowledge).
func h2cClient() *http.Client {
	return &http.Client{Timeout: waitTimeout, Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}}
}

// Full-duplex streaming over HTTP/2 end to end (as gRPC bidi streams
// need): each line the client sends is echoed back before the client sends
// the next one, so a proxy that waits for the whole request body first
// would deadlock (bounded by the client timeout). Like a gRPC client, the
// first message goes out without waiting for the response head.
func TestHostileStreamDuplex(t *testing.T) {
	t.Parallel()
	h2s := &http2.Server{}
	ln := serveRaw(t, func(c net.Conn) {
		h2s.ServeConn(c, &http2.ServeConnOpts{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			br := bufio.NewReader(r.Body)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				io.WriteString(w, "echo "+line)
				w.(http.Flusher).Flush()
			}
		})})
	})
	e := startEdge(t, "h2c://"+ln.Addr().String(), "")
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest("POST", "http://"+e.addr+"/duplex", pr)
	go fmt.Fprintf(pw, "ping 0\n")
	res, err := h2cClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	for i := 0; i < 5; i++ {
		if i > 0 {
			go fmt.Fprintf(pw, "ping %d\n", i)
		}
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("echo ping %d\n", i) {
			t.Fatalf("round %d: %q %v", i, line, err)
		}
	}
}

// Server-sent events reach an HTTP/2 client one by one too.
func TestHostileStreamSSEOverH2(t *testing.T) {
	t.Parallel()
	b := newStreamBackend(t)
	e := startEdge(t, b.ln.Addr().String(), "")
	res, err := h2cClient().Get("http://" + e.addr + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.ProtoMajor != 2 {
		t.Fatalf("proto %s", res.Proto)
	}
	br := bufio.NewReader(res.Body)
	for i := 1; i <= 3; i++ {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: event %d\n", i) {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		br.ReadString('\n')
		b.ack <- struct{}{}
	}
}
