package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testcert"
)

// Hostile input on an https endpoint: stalled handshakes and slow headers
// are cut at the header timeout, plaintext gets a clear answer, and the
// smuggling guard works over TLS as over plaintext.
func TestHostileTLS(t *testing.T) {
	t.Parallel()
	b := newRecBackend(t)
	dir := t.TempDir()
	cert, key := testcert.Generate(t, dir, "app.test")
	cfg := writeConfig(t, dir, fmt.Sprintf(`
log: {format: json}
limits: {read_header_timeout: 1s}
endpoints:
  - url: https://app.test
    listen: 127.0.0.1:0
    tls: {cert: %s, key: %s}
    upstream: http://%s
`, filepath.Base(cert), filepath.Base(key), b.addr()))
	p := start(t, "serve", "-c", cfg)
	addr := p.addr("127.0.0.1:0")
	tlsConf := &tls.Config{RootCAs: testcert.Pool(t, cert), ServerName: "app.test"}
	dialTLS := func(t *testing.T) *rawConn {
		t.Helper()
		c, err := tls.Dial("tcp", addr, tlsConf)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
	}

	t.Run("stalled handshake", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send("\x16\x03\x01\x02\x00\x01") // a record header and one byte of hello
		if closed, _ := c.closedByPeer(); !closed {
			t.Fatal("a stalled handshake keeps its connection")
		}
	})

	t.Run("slowloris over TLS", func(t *testing.T) {
		c := dialTLS(t)
		stop := make(chan struct{})
		defer close(stop)
		go trickle(c.c, "GET / HTTP/1.1\r\nHost: app.test\r\nX-Slow: "+strings.Repeat("a", 200), 50*time.Millisecond, stop)
		if closed, _ := c.closedByPeer(); !closed {
			t.Fatal("slowloris over TLS not cut")
		}
	})

	t.Run("plaintext on the TLS port", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.send("GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
		closed, extra := c.closedByPeer()
		if !closed {
			t.Fatal("connection left open")
		}
		if extra != "" && !strings.HasPrefix(extra, "HTTP/1.") {
			t.Errorf("answer %q", extra)
		}
	})

	t.Run("CL+TE over TLS", func(t *testing.T) {
		m := b.mark()
		c := dialTLS(t)
		c.send("POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled)
		res, _, err := c.response("POST")
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 400 && res.StatusCode != 200 {
			t.Errorf("status %d", res.StatusCode)
		}
		if closed, _ := c.closedByPeer(); !closed {
			t.Error("connection left open after ambiguous framing")
		}
		for _, r := range b.since(m) {
			if r.Path != "/" {
				t.Errorf("backend got %s", r.Path)
			}
		}
	})

	// h2c is for cleartext only (RFC 7540 §3.2): over TLS the Upgrade is
	// ignored and the request served as HTTP/1.1.
	t.Run("Upgrade h2c over TLS", func(t *testing.T) {
		c := dialTLS(t)
		c.send("GET /h2c HTTP/1.1\r\nHost: app.test\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
		res, body, err := c.response("GET")
		if err != nil || res.StatusCode != http.StatusOK || body != "ok /h2c 0" {
			t.Fatalf("%v %v %q", res, err, body)
		}
	})

	t.Run("valid request still served", func(t *testing.T) {
		c := dialTLS(t)
		c.send("GET /fine HTTP/1.1\r\nHost: app.test\r\n\r\n")
		res, body, err := c.response("GET")
		if err != nil || res.StatusCode != http.StatusOK || body != "ok /fine 0" {
			t.Fatalf("%v %v %q", res, err, body)
		}
	})
}
