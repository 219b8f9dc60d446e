package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/proxy/upstream"
)

// TestMalformedRequests sends broken HTTP/1.1 and expects a 4xx answer and
// a closed connection, with nothing reaching the upstream.
func TestMalformedRequests(t *testing.T) {
	var hits atomic.Int32
	var seen atomic.Value
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		seen.Store(fmt.Sprintf("cl=%d te=%v hdr=%v", r.ContentLength, r.TransferEncoding, r.Header))
		io.ReadAll(r.Body)
	})
	s := start(t, Options{Limits: Limits{MaxHeaderBytes: 4096}}, EndpointConfig{URL: "http://:80", Upstream: up(b.URL)})
	a := addr(t, s, "127.0.0.1:0")
	for _, tc := range []struct{ name, req, want string }{
		{"bad request line", "GET /\r\n\r\n", "HTTP/1.1 400"},
		{"garbage", "\x16\x03\x01\x00\x00hello\r\n\r\n", "HTTP/1.1 400"},
		{"bad header name", "GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n", "HTTP/1.1 400"},
		{"differing content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "HTTP/1.1 400"},
		{"bad content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 400"},
		{"unknown transfer-encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 501"},
		{"invalid chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400"},
		{"header too large", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 8192) + "\r\n\r\n", "HTTP/1.1 431"},
	} {
		got := raw(t, a, tc.req)
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: got %q", tc.name, got)
		}
	}
	// The invalid chunk size reaches the proxy only once the body is read,
	// so the upstream may have seen the head; the others never.
	if n := hits.Load(); n > 1 {
		t.Errorf("upstream saw %d malformed requests", n)
	}

	// net/http would let chunked win over Content-Length and join folded
	// lines; the h1 guard refuses both before a handler runs.
	before := hits.Load()
	for name, req := range map[string]string{
		"CL+TE":    "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"TE+CL":    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\ncontent-length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"obs-fold": "GET / HTTP/1.1\r\nHost: a\r\nX-Fold: a\r\n b\r\n\r\n",
		// Smuggled in the second request of a keep-alive connection,
		// behind a chunked body with an extension and a trailer.
		"pipelined": "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n" +
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	} {
		got := raw(t, a, req)
		if n := strings.Count(got, "HTTP/1.1 400 Bad Request"); n != 1 || !strings.HasSuffix(got, "400 Bad Request") {
			t.Errorf("%s: %q", name, got)
		}
	}
	// At most the first pipelined request (when it arrived in an earlier
	// read than the smuggled one) reaches the upstream.
	if n := hits.Load() - before; n > 1 {
		t.Errorf("upstream saw %d of the refused requests", n)
	}
	_ = seen
}

func TestBodyLimits(t *testing.T) {
	var hits atomic.Int32
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
	})
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(b.URL), Limits: &Limits{MaxBodyBytes: 1000}})
	a := addr(t, s, "127.0.0.1:0")
	// Declared too large: refused before anything is forwarded.
	got := raw(t, a, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n"+strings.Repeat("x", 5000))
	if !strings.HasPrefix(got, "HTTP/1.1 413") || !strings.Contains(got, "request body too large (request id ") || !strings.Contains(got, "Connection: close") {
		t.Errorf("declared: %q", got)
	}
	if hits.Load() != 0 {
		t.Errorf("upstream was reached")
	}
	// Streamed chunked over the limit.
	res, err := http.Post("http://"+a+"/", "text/plain", io.MultiReader(strings.NewReader(strings.Repeat("y", 5000))))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 413 || !strings.Contains(string(body), "request body too large") {
		t.Errorf("chunked: %d %q", res.StatusCode, body)
	}
	// Under the limit is fine.
	res, err = http.Post("http://"+a+"/", "text/plain", strings.NewReader("small"))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("small: %v %v", res, err)
	}
	res.Body.Close()
}

func TestUpstreamErrors(t *testing.T) {
	// Refused: a port nobody listens on.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := "http://" + l.Addr().String()
	l.Close()
	// Slow: accepts and never answers.
	slow, _ := net.Listen("tcp", "127.0.0.1:0")
	defer slow.Close()
	go func() {
		for {
			c, err := slow.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	// Reset: reads the request and closes without an answer.
	reset, _ := net.Listen("tcp", "127.0.0.1:0")
	defer reset.Close()
	go func() {
		for {
			c, err := reset.Accept()
			if err != nil {
				return
			}
			c.Read(make([]byte, 4096))
			c.Close()
		}
	}()
	// Garbage answer.
	garbage, _ := net.Listen("tcp", "127.0.0.1:0")
	defer garbage.Close()
	go func() {
		for {
			c, err := garbage.Accept()
			if err != nil {
				return
			}
			c.Read(make([]byte, 4096))
			c.Write([]byte("SSH-2.0-OpenSSH\r\n\r\n"))
			c.Close()
		}
	}()
	// Slow h2c: answers only after the test ends.
	stop := make(chan struct{})
	defer close(stop)
	slowH2 := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	slowH2.Config.Protocols = new(http.Protocols)
	slowH2.Config.Protocols.SetUnencryptedHTTP2(true)
	slowH2.Start()
	defer slowH2.Close()
	lim := &Limits{ResponseHeaderTimeout: 200 * time.Millisecond, DialTimeout: 200 * time.Millisecond}
	passiveOff := upstream.Passive{Disabled: true}
	s := start(t, Options{},
		EndpointConfig{URL: "http://refused.test:80", Upstream: upstream.Config{URLs: []string{refused}, Passive: passiveOff}},
		EndpointConfig{URL: "http://slow.test:80", Upstream: up("http://" + slow.Addr().String()), Limits: lim},
		EndpointConfig{URL: "http://reset.test:80", Upstream: up("http://" + reset.Addr().String())},
		EndpointConfig{URL: "http://garbage.test:80", Upstream: up("http://" + garbage.Addr().String())},
		EndpointConfig{URL: "http://dialtimeout.test:80", Upstream: up(named(t, "never")), Limits: &Limits{DialTimeout: time.Nanosecond}},
		EndpointConfig{URL: "http://none.test:80"},
		EndpointConfig{URL: "http://h2cslow.test:80", Upstream: up("h2c://" + slowH2.Listener.Addr().String()), Limits: lim},
		EndpointConfig{URL: "http://h2crefused.test:80", Upstream: upstream.Config{URLs: []string{"h2c" + refused[len("http"):]}, Passive: passiveOff}},
	)
	a := addr(t, s, "127.0.0.1:0")
	for host, want := range map[string]string{
		"refused.test":     "502 Bad Gateway: upstream connect failed",
		"slow.test":        "504 Gateway Timeout: upstream response timed out",
		"reset.test":       "502 Bad Gateway: upstream",
		"garbage.test":     "502 Bad Gateway: upstream sent an invalid response",
		"dialtimeout.test": "504 Gateway Timeout: upstream connect timed out",
		"none.test":        "503 Service Unavailable: no upstream configured",
		"h2crefused.test":  "502 Bad Gateway: upstream connect failed",
		"h2cslow.test":     "504 Gateway Timeout: upstream response timed out",
	} {
		res, body := get(t, "http://"+a+"/", "Host", host)
		id := res.Header.Get("X-Request-Id")
		if !strings.HasPrefix(body, want) || !strings.HasSuffix(body, "(request id "+id+")\n") || id == "" {
			t.Errorf("%s: %d %q", host, res.StatusCode, body)
		}
	}
}

func TestNoHealthyUpstream(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := "http://" + l.Addr().String()
	l.Close()
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: upstream.Config{
		URLs:    []string{refused},
		Passive: upstream.Passive{MaxFails: 1, Window: time.Minute, Eject: time.Minute},
	}})
	a := addr(t, s, "127.0.0.1:0")
	codes := ""
	for i := 0; i < 3; i++ {
		res, _ := get(t, "http://"+a+"/")
		codes += fmt.Sprint(res.StatusCode, " ")
	}
	// The first failure ejects the only target; the pool then answers
	// (panic mode keeps trying all-down pools) or says none is healthy.
	if !strings.HasPrefix(codes, "502 ") {
		t.Errorf("codes %s", codes)
	}
}

func TestRetryOnConnectFailure(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := "http://" + l.Addr().String()
	l.Close()
	good := named(t, "good")
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: upstream.Config{URLs: []string{refused, good}}})
	a := addr(t, s, "127.0.0.1:0")
	bodies := []func() io.Reader{
		func() io.Reader { return strings.NewReader("body") },                       // small: read ahead
		func() io.Reader { return strings.NewReader(strings.Repeat("b", 100<<10)) }, // large: streamed
		func() io.Reader { return io.MultiReader(strings.NewReader("chunked")) },    // unknown length
	}
	for i := 0; i < 6; i++ {
		res, err := http.Post("http://"+a+"/", "text/plain", bodies[i%3]())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(b) != "good" {
			t.Fatalf("attempt %d: %d %q", i, res.StatusCode, b)
		}
	}
}

// TestStaleUpstreamConnection: an upstream that closes idle keep-alive
// connections must not turn into client errors.
func TestStaleUpstreamConnection(t *testing.T) {
	b := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(b.URL)})
	a := addr(t, s, "127.0.0.1:0")
	for i := 0; i < 3; i++ {
		if _, body := get(t, "http://"+a+"/"); body != "ok" {
			t.Fatalf("before: %q", body)
		}
		b.CloseClientConnections() // server closes the pooled connection
		for _, m := range []string{"GET", "POST", "POST-stream"} {
			var in io.Reader = strings.NewReader("x")
			if m == "POST-stream" {
				// Unknown length: streamed while the answer is awaited, so
				// it cannot be retried and the reuse must be probed.
				m, in = "POST", io.MultiReader(strings.NewReader("x"))
			}
			req, _ := http.NewRequest(m, "http://"+a+"/", in)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(body) != "ok" {
				t.Fatalf("%s after close: %d %q", m, res.StatusCode, body)
			}
			b.CloseClientConnections()
		}
	}
}

func TestSlowClientTimeouts(t *testing.T) {
	s := start(t, Options{Limits: Limits{ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: 300 * time.Millisecond}},
		EndpointConfig{URL: "http://:80", Upstream: up(named(t, "ok"))})
	a := addr(t, s, "127.0.0.1:0")
	for _, partial := range []string{"", "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: "} {
		c, err := net.Dial("tcp", a)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, partial)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		_, err = io.ReadAll(c)
		c.Close()
		if err != nil || time.Since(start) > 4*time.Second {
			t.Errorf("partial %q: not closed by the header timeout (%v)", partial, err)
		}
	}
	// An idle keep-alive connection is closed after IdleTimeout.
	c, err := net.Dial("tcp", a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	all, err := io.ReadAll(c)
	if err != nil || !strings.HasPrefix(string(all), "HTTP/1.1 200") {
		t.Fatalf("idle: %q %v", all, err)
	}
}

func TestUpstreamOddAnswers(t *testing.T) {
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/early":
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			io.WriteString(w, "after hints")
		case "/bigheader":
			w.Header().Set("X-Big", strings.Repeat("b", 10000))
			io.WriteString(w, "x")
		}
	})
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(b.URL)})
	a := addr(t, s, "127.0.0.1:0")
	if res, body := get(t, "http://"+a+"/early"); res.StatusCode != 200 || body != "after hints" {
		t.Errorf("103 then 200: %d %q", res.StatusCode, body)
	}
	if res, body := get(t, "http://"+a+"/bigheader"); res.StatusCode != 502 || !strings.Contains(body, "upstream sent an invalid response") {
		t.Errorf("oversized upstream header: %d %q", res.StatusCode, body)
	}
	if _, body := get(t, "http://"+a+"/early"); body != "after hints" {
		t.Errorf("after a bad answer: %q", body)
	}
}
