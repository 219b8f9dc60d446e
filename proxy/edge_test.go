package proxy

import (
	"bufio"
	"context"
	"os"

	"crypto/tls"
	"fmt"
	"github.com/sluicehq/sluice/internal/reload"
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"
	"github.com/sluicehq/sluice/exchange"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestBodylessAnswers(t *testing.T) {
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/304":
			w.Header().Set("Etag", `"x"`)
			w.WriteHeader(304)
		case "/204":
			w.WriteHeader(204)
		default:
			w.Header().Set("Content-Length", "1234")
			if r.Method != "HEAD" {
				w.Write(make([]byte, 1234))
			}
		}
	})
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(b.URL)})
	a := addr(t, s, "127.0.0.1:0")
	c, err := net.Dial("tcp", a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	// Several bodyless answers on one keep-alive connection: any stray body
	// byte would break the framing of the next.
	for _, tc := range []struct {
		method, path string
		code         int
		cl           string
	}{
		{"HEAD", "/", 200, "1234"}, {"GET", "/304", 304, ""}, {"GET", "/204", 204, ""}, {"GET", "/", 200, "1234"},
	} {
		io.WriteString(c, tc.method+" "+tc.path+" HTTP/1.1\r\nHost: a\r\n\r\n")
		req, _ := http.NewRequest(tc.method, "/", nil)
		res, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		n, _ := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != tc.code || res.Header.Get("Content-Length") != tc.cl {
			t.Errorf("%s %s: %d cl=%q n=%d", tc.method, tc.path, res.StatusCode, res.Header.Get("Content-Length"), n)
		}
	}
}

func TestExpectContinueAndHTTP10(t *testing.T) {
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+string(body))
	})
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(b.URL)})
	a := addr(t, s, "127.0.0.1:0")
	c, err := net.Dial("tcp", a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	line, _ := br.ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("no 100 Continue: %q", line)
	}
	br.ReadString('\n')
	io.WriteString(c, "hello")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if string(body) != "POST hello" {
		t.Fatalf("got %q", body)
	}
	got := raw(t, a, "GET / HTTP/1.0\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.0 200") || !strings.HasSuffix(got, "GET ") {
		t.Fatalf("HTTP/1.0: %q", got)
	}
}

// TestH2ClientBodyToH1Upstream: an h2 client's POST (no length) becomes a
// chunked HTTP/1.1 upload.
func TestH2ClientBodyToH1Upstream(t *testing.T) {
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Proto+" "+string(body))
	})
	pair, pool := selfSigned(t, "h2.test")
	s := start(t, Options{}, EndpointConfig{URL: "https://h2.test:443", TLS: []certPair{pair}, Upstream: up(b.URL)})
	c := h2Client(pool, "h2.test")
	defer c.CloseIdleConnections()
	res, err := c.Post("https://"+addr(t, s, "127.0.0.1:0")+"/", "text/plain", io.MultiReader(strings.NewReader("streamed body")))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.Proto != "HTTP/2.0" || string(body) != "HTTP/1.1 streamed body" {
		t.Fatalf("%s %q", res.Proto, body)
	}
}

func TestOnConnectTLSSeesSNI(t *testing.T) {
	pair, pool := selfSigned(t, "a.test", "deny.test")
	var mu sync.Mutex
	var seen []string
	hk := &hooks{connect: func(c *exchange.Conn) error {
		mu.Lock()
		seen = append(seen, c.SNI+" "+c.Endpoint.ID+" tls="+fmt.Sprint(c.TLS != nil))
		mu.Unlock()
		if c.SNI == "deny.test" {
			return exchange.ErrCloseConnection
		}
		return nil
	}}
	s := start(t, Options{},
		EndpointConfig{URL: "https://a.test:443", TLS: []certPair{pair}, Upstream: up(named(t, "a")), Hooks: hk},
		EndpointConfig{URL: "https://deny.test:443", TLS: []certPair{pair}, Upstream: up(named(t, "deny")), Hooks: hk},
	)
	a := addr(t, s, "127.0.0.1:0")
	c := h2Client(pool, "a.test")
	res, err := c.Get("https://" + a + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	c.CloseIdleConnections()
	if string(body) != "a" {
		t.Fatalf("got %q", body)
	}
	if _, err := tls.Dial("tcp", a, &tls.Config{RootCAs: pool, ServerName: "deny.test"}); err == nil {
		t.Fatal("denied SNI completed a handshake")
	}
	mu.Lock()
	defer mu.Unlock()
	// OnConnect runs before the handshake: the SNI and endpoint are known,
	// the TLS state not yet.
	if len(seen) != 2 || seen[0] != "a.test ep_a.test_443 tls=false" || seen[1] != "deny.test ep_deny.test_443 tls=false" {
		t.Fatalf("OnConnect saw %q", seen)
	}
}

func TestPolicyReplacesSwitchingProtocols(t *testing.T) {
	upg := websocket.Upgrader{}
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if c, err := upg.Upgrade(w, r, nil); err == nil {
			c.Close()
		}
	})
	hk := &hooks{response: func(x *exchange.Exchange) error {
		x.Res = &exchange.Response{StatusCode: 403, Header: http.Header{}, ContentLength: 2, Body: io.NopCloser(strings.NewReader("no")), Generated: true}
		return nil
	}}
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(b.URL), Hooks: hk})
	_, res, err := websocket.DefaultDialer.Dial("ws://"+addr(t, s, "127.0.0.1:0")+"/", nil)
	if err == nil || res == nil || res.StatusCode != 403 {
		t.Fatalf("%v %v", err, res)
	}
}

func TestCertificateHotReload(t *testing.T) {
	w, err := reload.NewWatcher(quiet)
	if err != nil {
		t.Fatal(err)
	}
	w.Debounce = 10 * time.Millisecond
	w.PollInterval = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)

	p1, _ := selfSigned(t, "hot.test")
	p2, _ := selfSigned(t, "hot.test")
	s := start(t, Options{Watcher: w}, EndpointConfig{URL: "https://hot.test:443", TLS: []certPair{p1}, Upstream: up(named(t, "x"))})
	a := addr(t, s, "127.0.0.1:0")
	serial := func() string {
		c, err := tls.Dial("tcp", a, &tls.Config{ServerName: "hot.test", InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := serial()
	// Replace the live files with the second pair's content.
	for _, f := range [][2]string{{p2.Cert, p1.Cert}, {p2.Key, p1.Key}} {
		b, _ := os.ReadFile(f[0])
		os.WriteFile(f[1]+".tmp", b, 0o600)
		os.Rename(f[1]+".tmp", f[1])
	}
	for i := 0; i < 100; i++ {
		if serial() != first {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("certificate not reloaded within 5s")
}

func TestCustomDial(t *testing.T) {
	b := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "via custom dial") })
	var dialed atomic.Int32
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed.Add(1)
		if addr != "agent.invalid:80" {
			return nil, fmt.Errorf("unexpected addr %s", addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", b.Listener.Addr().String())
	}
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up("http://agent.invalid:80"), Dial: dial})
	for i := 0; i < 3; i++ {
		if _, body := get(t, "http://"+addr(t, s, "127.0.0.1:0")+"/"); body != "via custom dial" {
			t.Fatalf("got %q", body)
		}
	}
	if n := dialed.Load(); n != 1 {
		t.Fatalf("dialed %d times, want 1 (pooled)", n)
	}
}

func TestPlainHTTPOnTLSPort(t *testing.T) {
	pair, _ := selfSigned(t, "t.test")
	s := start(t, Options{}, EndpointConfig{URL: "https://t.test:443", TLS: []certPair{pair}, Upstream: up(named(t, "x"))})
	got := raw(t, addr(t, s, "127.0.0.1:0"), "GET / HTTP/1.1\r\nHost: t.test\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil)
	if err != nil {
		t.Fatalf("%q: %v", got, err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 400 || string(body) != "400 Bad Request: plain HTTP request sent to a TLS port\n" {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
}
