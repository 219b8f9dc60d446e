package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/exchange"
)

func named(t *testing.T, name string) string {
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name)
	})
	return b.URL
}

func TestHostRouting(t *testing.T) {
	s := start(t, Options{},
		EndpointConfig{URL: "http://app.example.com:80", Upstream: up(named(t, "exact"))},
		EndpointConfig{URL: "http://*.example.com:80", Upstream: up(named(t, "wild"))},
		EndpointConfig{URL: "http://*.b.example.com:80", Upstream: up(named(t, "wild-longer"))},
		EndpointConfig{URL: "http://:80", Upstream: up(named(t, "any"))},
		EndpointConfig{URL: "http://other.test:80", Listen: "127.0.0.2:0", Upstream: up(named(t, "second-listener"))},
	)
	a := addr(t, s, "127.0.0.1:0")
	for host, want := range map[string]string{
		"app.example.com":    "exact",
		"APP.Example.com:80": "exact",
		"app.example.com.":   "exact",
		"x.example.com":      "wild",
		"a.b.c.example.com":  "wild",
		"x.b.example.com":    "wild-longer",
		"example.com":        "any",
		"nothing.test":       "any",
		"[::1]:80":           "any",
	} {
		res, body := get(t, "http://"+a+"/", "Host", host)
		if res.StatusCode != 200 || body != want {
			t.Errorf("host %s: got %d %q, want %q", host, res.StatusCode, body, want)
		}
	}
	a2 := addr(t, s, "127.0.0.2:0")
	if _, body := get(t, "http://"+a2+"/", "Host", "other.test"); body != "second-listener" {
		t.Errorf("second listener: %q", body)
	}
	res, body := get(t, "http://"+a2+"/", "Host", "unknown.test")
	if res.StatusCode != http.StatusNotFound || !strings.Contains(body, "no endpoint for this host (request id "+res.Header.Get("X-Request-Id")+")") {
		t.Errorf("unknown host: %d %q", res.StatusCode, body)
	}
}

func TestForwardInternal(t *testing.T) {
	var seen []string
	outer := &hooks{
		request: func(x *exchange.Exchange) error {
			x.Pinned = "outer"
			if strings.HasPrefix(x.Req.Path, "/billing") {
				x.ForwardInternal = "https://billing.internal"
			}
			return nil
		},
		response: func(x *exchange.Exchange) error {
			seen = append(seen, "outer-res:"+x.Pinned.(string)+":"+x.Endpoint.ID)
			x.Res.Header.Set("X-Outer", "1")
			return nil
		},
	}
	inner := &hooks{
		request: func(x *exchange.Exchange) error {
			x.Pinned = "inner"
			seen = append(seen, "inner-req:"+x.Endpoint.ID)
			x.Req.Header.Set("X-Inner", "yes")
			return nil
		},
		response: func(x *exchange.Exchange) error {
			seen = append(seen, "inner-res:"+x.Pinned.(string))
			return nil
		},
	}
	billing := backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "billing "+r.Header.Get("X-Inner"))
	})
	s := start(t, Options{},
		EndpointConfig{URL: "http://:80", Upstream: up(named(t, "main")), Hooks: outer},
		EndpointConfig{URL: "https://billing.internal", Upstream: up(billing.URL), Hooks: inner},
	)
	if len(s.Addrs()) != 1 {
		t.Fatalf("internal endpoint got a listener: %v", s.Addrs())
	}
	a := addr(t, s, "127.0.0.1:0")
	res, body := get(t, "http://"+a+"/billing/x")
	if body != "billing yes" || res.Header.Get("X-Outer") != "1" {
		t.Fatalf("got %q %v", body, res.Header)
	}
	want := "inner-req:ep_billing.internal_443 inner-res:inner outer-res:outer:ep_any_80"
	if got := strings.Join(seen, " "); got != want {
		t.Fatalf("hook order\n got %s\nwant %s", got, want)
	}
	if outer.done.Load() != 1 || inner.done.Load() != 1 {
		t.Fatalf("done calls outer=%d inner=%d", outer.done.Load(), inner.done.Load())
	}
	if _, body := get(t, "http://"+a+"/main"); body != "main" {
		t.Fatalf("main: %q", body)
	}
}

func TestHookAnswersAndErrors(t *testing.T) {
	h := &hooks{request: func(x *exchange.Exchange) error {
		switch x.Req.Path {
		case "/deny":
			return &exchange.Error{Status: 403, Msg: "denied by policy"}
		case "/answer":
			x.Res = &exchange.Response{StatusCode: 201, Header: http.Header{"X-A": {"1"}},
				ContentLength: 2, Body: io.NopCloser(strings.NewReader("ok")), Generated: true}
		case "/panic":
			panic("boom")
		}
		return nil
	}, response: func(x *exchange.Exchange) error {
		x.Res.Header.Set("X-Seen", "1")
		return nil
	}}
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(named(t, "up")), Hooks: h})
	a := addr(t, s, "127.0.0.1:0")
	res, body := get(t, "http://"+a+"/deny")
	if res.StatusCode != 403 || !strings.HasPrefix(body, "403 Forbidden: denied by policy (request id ") || res.Header.Get("X-Seen") != "1" {
		t.Errorf("deny: %d %q %v", res.StatusCode, body, res.Header)
	}
	res, body = get(t, "http://"+a+"/answer")
	if res.StatusCode != 201 || body != "ok" || res.Header.Get("X-Seen") != "1" {
		t.Errorf("answer: %d %q", res.StatusCode, body)
	}
	res, body = get(t, "http://"+a+"/panic")
	if res.StatusCode != 500 || !strings.Contains(body, "policy failed") {
		t.Errorf("panic: %d %q", res.StatusCode, body)
	}
	if _, body = get(t, "http://"+a+"/fine"); body != "up" {
		t.Errorf("fine: %q", body)
	}
	if h.done.Load() != 4 {
		t.Errorf("done = %d, want 4", h.done.Load())
	}
}

func TestCloseConnection(t *testing.T) {
	h := &hooks{request: func(x *exchange.Exchange) error { return exchange.ErrCloseConnection }}
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(named(t, "up")), Hooks: h})
	got := raw(t, addr(t, s, "127.0.0.1:0"), "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if got != "" {
		t.Fatalf("expected closed connection without answer, got %q", got)
	}
	cs := &hooks{connect: func(c *exchange.Conn) error {
		if c.Endpoint == nil || c.ClientAddr.Addr().String() != "127.0.0.1" {
			t.Errorf("conn %+v", c)
		}
		return exchange.ErrCloseConnection
	}}
	s2 := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(named(t, "up")), Hooks: cs})
	if got := raw(t, addr(t, s2, "127.0.0.1:0"), "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); got != "" {
		t.Fatalf("on_tcp_connect close: got %q", got)
	}
}
