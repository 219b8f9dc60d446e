package proxy

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/proxy/certs"
)

// echoHeaders answers with the request head as the upstream saw it.
func echoHeaders(t *testing.T) string {
	return backend(t, func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		if r.TransferEncoding != nil {
			h["Transfer-Encoding"] = r.TransferEncoding
		}
		w.Header().Set("Connection", "X-Secret")
		w.Header().Set("X-Secret", "hop")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Via", "1.0 backend")
		json.NewEncoder(w).Encode(h)
	}).URL
}

func headersVia(t *testing.T, a string, req string) (http.Header, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte(req))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var h http.Header
	if err := json.NewDecoder(res.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h, res
}

func TestHopByHopAndForwarded(t *testing.T) {
	var gotConn *exchange.Conn
	hk := &hooks{request: func(x *exchange.Exchange) error {
		c := *x.Conn
		gotConn = &c
		return nil
	}}
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(echoHeaders(t)), Hooks: hk})
	a := addr(t, s, "127.0.0.1:0")
	h, res := headersVia(t, a, "GET /x HTTP/1.1\r\nHost: app.test\r\n"+
		"Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: 300\r\nProxy-Connection: x\r\n"+
		"Te: trailers, deflate\r\nUpgrade: foo\r\nProxy-Authorization: x\r\nX-Keep: yes\r\n"+
		"X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\n"+
		"X-Request-Id: client-chosen\r\nVia: 1.0 client-proxy\r\n\r\n")
	for _, k := range []string{"X-Drop", "Keep-Alive", "Proxy-Connection", "Upgrade", "Proxy-Authorization", "Connection"} {
		if v, ok := h[k]; ok {
			t.Errorf("hop-by-hop %s reached the upstream: %v", k, v)
		}
	}
	want := map[string]string{
		"X-Keep":            "yes",
		"Te":                "trailers",
		"Host":              "app.test",
		"X-Forwarded-For":   "127.0.0.1", // untrusted peer: a new chain
		"Forwarded":         `for=127.0.0.1;host="app.test";proto=http`,
		"X-Forwarded-Host":  "app.test",
		"X-Forwarded-Proto": "http",
		"Via":               "1.0 client-proxy, 1.1 sluice",
		"X-Request-Id":      res.Header.Get("X-Request-Id"),
	}
	for k, v := range want {
		if got := strings.Join(h[k], "|"); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if res.Header.Get("X-Secret") != "" || res.Header.Get("Keep-Alive") != "" {
		t.Errorf("hop-by-hop response headers reached the client: %v", res.Header)
	}
	if got := strings.Join(res.Header["Via"], ", "); got != "1.0 backend, 1.1 sluice" {
		t.Errorf("response Via %q", got)
	}
	if gotConn.ClientAddr.Addr().String() != "127.0.0.1" {
		t.Errorf("client addr %v", gotConn.ClientAddr)
	}
}

func TestTrustedProxies(t *testing.T) {
	var client netip.Addr
	hk := &hooks{request: func(x *exchange.Exchange) error {
		client = x.Conn.ClientAddr.Addr()
		return nil
	}}
	s := start(t, Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}},
		EndpointConfig{URL: "http://:80", Upstream: up(echoHeaders(t)), Hooks: hk})
	a := addr(t, s, "127.0.0.1:0")
	h, _ := headersVia(t, a, "GET / HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 203.0.113.9, 10.1.1.1\r\n"+
		"X-Forwarded-Proto: https\r\nX-Forwarded-Host: public.test\r\nForwarded: for=203.0.113.9\r\n\r\n")
	if client.String() != "203.0.113.9" {
		t.Errorf("client from XFF: %v", client)
	}
	for k, v := range map[string]string{
		"X-Forwarded-For":   "203.0.113.9, 10.1.1.1, 127.0.0.1",
		"X-Forwarded-Proto": "https",
		"X-Forwarded-Host":  "public.test",
		"Forwarded":         `for=203.0.113.9, for=127.0.0.1;host="app.test";proto=http`,
	} {
		if got := strings.Join(h[k], "|"); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// Forwarded alone, with an IPv6 node and port.
	headersVia(t, a, "GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=\"[2001:db8::7]:4711\";proto=https\r\n\r\n")
	if client.String() != "2001:db8::7" {
		t.Errorf("client from Forwarded: %v", client)
	}
}

func TestPolicyHeaderInjection(t *testing.T) {
	hk := &hooks{request: func(x *exchange.Exchange) error {
		x.Req.Header["X-Evil"] = []string{"a\r\nX-Injected: 1"}
		x.Req.Header["Bad Name"] = []string{"v"}
		x.Req.Header.Set("X-Good", "fine")
		return nil
	}}
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(echoHeaders(t)), Hooks: hk})
	h, _ := headersVia(t, addr(t, s, "127.0.0.1:0"), "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if h.Get("X-Injected") != "" || h.Get("X-Evil") != "" || h.Get("X-Good") != "fine" {
		t.Errorf("upstream saw %v", h)
	}
}

// A response hook that writes a CR or LF into the upstream's own header
// map (which the HTTP/1.1 writer takes over) cannot inject a field either.
func TestPolicyResponseHeaderInjection(t *testing.T) {
	hk := &hooks{response: func(x *exchange.Exchange) error {
		x.Res.Header["X-Evil"] = []string{"a\r\nX-Injected: 1"}
		x.Res.Header.Set("X-Good", "fine")
		return nil
	}}
	be := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(be.URL), Hooks: hk})
	raw := rawGetClose(t, addr(t, s, "127.0.0.1:0"))
	if strings.Contains(string(raw), "X-Injected") || strings.Contains(string(raw), "X-Evil") || !strings.Contains(string(raw), "X-Good: fine") {
		t.Errorf("client got:\n%s", raw)
	}
}

// Fields whose name contains "_" are dropped before policies and the
// upstream see them (nginx's underscores_in_headers off), over both
// HTTP/1.x engines and HTTP/2, and the request still succeeds.
func TestUnderscoreHeadersDropped(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	hk := &hooks{request: func(x *exchange.Exchange) error {
		mu.Lock()
		defer mu.Unlock()
		seen = seen[:0]
		for k := range x.Req.Header {
			seen = append(seen, k)
		}
		return nil
	}}
	be := echoHeaders(t)
	pair, pool := selfSigned(t, "app.test")
	check := func(t *testing.T, h http.Header) {
		t.Helper()
		for k := range h {
			if strings.Contains(k, "_") {
				t.Errorf("%s reached the upstream: %v", k, h[k])
			}
		}
		mu.Lock()
		for _, k := range seen {
			if strings.Contains(k, "_") {
				t.Errorf("%s reached the policy", k)
			}
		}
		mu.Unlock()
		if got := strings.Join(h["X-Forwarded-For"], "|"); got != "127.0.0.1" {
			t.Errorf("X-Forwarded-For = %q", got)
		}
		if h.Get("X-Keep") != "yes" {
			t.Errorf("X-Keep = %q: other fields must pass", h.Get("X-Keep"))
		}
	}
	for _, engine := range []string{EngineSluice, EngineNetHTTP} {
		t.Run(engine, func(t *testing.T) {
			s := start(t, Options{HTTP1Engine: engine},
				EndpointConfig{URL: "http://:80", Upstream: up(be), Hooks: hk},
				EndpointConfig{URL: "https://app.test:443", Listen: "127.0.0.2:0", TLS: []certs.Pair{pair}, Upstream: up(be), Hooks: hk})
			a := addr(t, s, "127.0.0.1:0")
			h, res := headersVia(t, a, "GET / HTTP/1.1\r\nHost: app.test\r\nX_Forwarded_For: 6.6.6.6\r\n"+
				"x_forwarded_host: evil\r\nX-Keep: yes\r\nTransfer_Encoding: chunked\r\nContent_Length: 5\r\nX_A: 1\r\n\r\n")
			if res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
			check(t, h)
			if engine != EngineSluice {
				return
			}
			c := h2Client(pool, "app.test")
			defer c.CloseIdleConnections()
			req, _ := http.NewRequest("GET", "https://"+addr(t, s, "127.0.0.2:0")+"/", nil)
			req.Header["X_Forwarded_For"] = []string{"6.6.6.6"}
			req.Header["X_a"] = []string{"1"}
			req.Header.Set("X-Keep", "yes")
			r2, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer r2.Body.Close()
			if r2.ProtoMajor != 2 || r2.StatusCode != 200 {
				t.Fatalf("h2: %s %d", r2.Proto, r2.StatusCode)
			}
			var h2 http.Header
			if err := json.NewDecoder(r2.Body).Decode(&h2); err != nil {
				t.Fatal(err)
			}
			check(t, h2)
		})
	}
}
