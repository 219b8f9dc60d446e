package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// rawClient is one keep-alive client connection for the raw-mode tests.
type rawClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, a string) *rawClient {
	c, err := net.Dial("tcp", a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawClient) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

// answer reads one response within 3s (raw mode must not sit on a request
// that arrived) and returns its status and body.
func (r *rawClient) answer() (int, string) {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	res, err := http.ReadResponse(r.br, nil)
	if err != nil {
		r.t.Fatalf("no answer: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		r.t.Fatalf("body: %v", err)
	}
	return res.StatusCode, string(b)
}

// bothModes runs f with raw mode on and off: the answers must not differ.
func bothModes(t *testing.T, f func(t *testing.T)) {
	for _, off := range []bool{false, true} {
		name := "raw"
		if off {
			name = "conn-read"
		}
		t.Run(name, func(t *testing.T) {
			noRawMode = off
			defer func() { noRawMode = false }()
			f(t)
		})
	}
}

// A request that arrives while the one before it is still being answered
// (a pipelining client) is answered: raw mode parks after an answer
// without reading, which is only right because the readiness of bytes that
// came in meanwhile is kept.
func TestRawModeRequestDuringAnswer(t *testing.T) {
	release := make(chan struct{})
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, r.URL.Path)
	})
	bothModes(t, func(t *testing.T) {
		s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(b.URL)})
		c := dialRaw(t, addr(t, s, "127.0.0.1:0"))
		for _, p := range []string{"/1", "/2"} { // the second is read in raw mode
			c.send("GET " + p + " HTTP/1.1\r\nHost: a\r\n\r\n")
			if code, body := c.answer(); code != 200 || body != p {
				t.Fatalf("%s: %d %q", p, code, body)
			}
		}
		c.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
		time.Sleep(100 * time.Millisecond) // /slow is upstream now
		c.send("GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
		time.Sleep(100 * time.Millisecond)
		release <- struct{}{}
		for _, p := range []string{"/slow", "/after"} {
			if code, body := c.answer(); code != 200 || body != p {
				t.Fatalf("%s: %d %q", p, code, body)
			}
		}
		// The same after a request with a body, which leaves raw mode: the
		// next request arrives before raw mode starts again.
		c.send("POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
		time.Sleep(100 * time.Millisecond)
		c.send("GET /after-post HTTP/1.1\r\nHost: a\r\n\r\n")
		time.Sleep(100 * time.Millisecond)
		release <- struct{}{}
		for _, p := range []string{"/slow", "/after-post"} {
			if code, body := c.answer(); code != 200 || body != p {
				t.Fatalf("%s: %d %q", p, code, body)
			}
		}
	})
}

// Requests of every kind on one connection: raw mode hands bodies, big
// heads and upgrades to the ordinary path and takes the next one back.
func TestRawModeMixedRequests(t *testing.T) {
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+r.URL.Path+" "+string(body)+" "+r.Header.Get("X-Big")[:min(3, len(r.Header.Get("X-Big")))])
	})
	bothModes(t, func(t *testing.T) {
		s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(b.URL)})
		c := dialRaw(t, addr(t, s, "127.0.0.1:0"))
		big := strings.Repeat("b", 6000) // more than the 4 KiB read buffer
		steps := []struct{ req, want string }{
			{"GET /a HTTP/1.1\r\nHost: a\r\n\r\n", "GET /a  "},
			{"GET /b HTTP/1.1\r\nHost: a\r\n\r\n", "GET /b  "},
			{"POST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz", "POST /c xyz "},
			{"GET /d HTTP/1.1\r\nHost: a\r\n\r\n", "GET /d  "},
			{"POST /e HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", "POST /e hi "},
			{"GET /f HTTP/1.1\r\nHost: a\r\nX-Big: " + big + "\r\n\r\n", "GET /f  bbb"},
			{"GET /g HTTP/1.1\r\nHost: a\r\n\r\n", "GET /g  "},
		}
		for _, st := range steps {
			c.send(st.req)
			if code, body := c.answer(); code != 200 || body != st.want {
				t.Fatalf("%q: %d %q, want %q", st.req[:10], code, body, st.want)
			}
		}
		// A head that trickles in, byte groups apart.
		for _, part := range []string{"GET /h HT", "TP/1.1\r\nHo", "st: a\r\n", "\r\n"} {
			c.send(part)
			time.Sleep(20 * time.Millisecond)
		}
		if code, body := c.answer(); code != 200 || body != "GET /h  " {
			t.Fatalf("trickled head: %d %q", code, body)
		}
		// A bad head after good ones is refused, then the connection ends.
		c.send("GET /i HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n")
		if code, _ := c.answer(); code != 400 {
			t.Fatalf("bad head: %d", code)
		}
	})
}

// A WebSocket-style upgrade after plain requests on the same connection.
func TestRawModeUpgradeAfterRequests(t *testing.T) {
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			io.WriteString(w, "plain")
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo " + line)
		brw.Flush()
	})
	bothModes(t, func(t *testing.T) {
		s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(b.URL)})
		c := dialRaw(t, addr(t, s, "127.0.0.1:0"))
		for i := 0; i < 2; i++ {
			c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			if code, body := c.answer(); code != 200 || body != "plain" {
				t.Fatalf("plain %d: %d %q", i, code, body)
			}
		}
		c.send("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		c.c.SetReadDeadline(time.Now().Add(3 * time.Second))
		res, err := http.ReadResponse(c.br, nil)
		if err != nil || res.StatusCode != 101 {
			t.Fatalf("upgrade: %v %v", res, err)
		}
		c.send("hello\n")
		if line, err := c.br.ReadString('\n'); err != nil || line != "echo hello\n" {
			t.Fatalf("upgraded stream: %q %v", line, err)
		}
	})
}

// Timeouts and shutdown while raw mode waits.
func TestRawModeTimeoutsAndShutdown(t *testing.T) {
	b := backend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	bothModes(t, func(t *testing.T) {
		s := start(t, Options{Limits: Limits{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 400 * time.Millisecond}},
			EndpointConfig{URL: "http://:80", Upstream: up(b.URL)})
		a := addr(t, s, "127.0.0.1:0")
		warm := func() *rawClient {
			c := dialRaw(t, a)
			for i := 0; i < 2; i++ {
				c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
				if code, _ := c.answer(); code != 200 {
					t.Fatalf("warm-up: %d", code)
				}
			}
			return c
		}
		// A head begun but not finished: 408, then the end.
		c := warm()
		c.send("GET / HTTP/1.1\r\nHost: a\r\n")
		if code, _ := c.answer(); code != http.StatusRequestTimeout {
			t.Fatalf("unfinished head: %d, want 408", code)
		}
		// Idle: closed without an answer.
		c = warm()
		c.c.SetReadDeadline(time.Now().Add(3 * time.Second))
		start := time.Now()
		if n, err := c.br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("idle connection: %d %v", n, err)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Fatalf("idle connection closed after %v, before IdleTimeout", d)
		}
		// Shutdown closes an idle connection at once.
		c = warm()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		c.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.br.ReadByte(); err != io.EOF {
			t.Fatalf("idle connection after shutdown: %v", err)
		}
	})
}

// The engine's writer takes the upstream's header map over instead of a
// copy (writeResponse); net/http's writer gets a copy: what the client
// gets must match, field for field, for answers with and without bodies.
func TestH1ResponseFieldsMatchNetHTTP(t *testing.T) {
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Powered-By", "Express")
		h.Add("X-Multi", "1")
		h.Add("X-Multi", "2")
		h.Set("Connection", "X-Hop")
		h.Set("X-Hop", "dropped")
		h.Set("Via", "1.0 origin")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Date", "Tue, 01 Jan 2030 00:00:00 GMT")
		switch r.URL.Path {
		case "/empty":
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		case "/typed":
			h.Set("Content-Type", "application/x-typed")
			io.WriteString(w, "<html>")
		case "/sniffed":
			io.WriteString(w, "<html><body>x</body></html>")
		case "/chunked":
			h.Set("Trailer", "X-T")
			io.WriteString(w, "part1")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part2")
			h.Set("X-T", "tv")
		}
	})
	answer := func(engine, method, path string) (*http.Response, string) {
		s := start(t, Options{HTTP1Engine: engine}, EndpointConfig{URL: "http://:80", Upstream: up(b.URL)})
		c := dialRaw(t, addr(t, s, "127.0.0.1:0"))
		c.send(method + " " + path + " HTTP/1.1\r\nHost: a\r\n\r\n")
		c.c.SetReadDeadline(time.Now().Add(3 * time.Second))
		req, _ := http.NewRequest(method, "http://a"+path, nil)
		res, err := http.ReadResponse(c.br, req)
		if err != nil {
			t.Fatalf("%s %s %s: %v", engine, method, path, err)
		}
		body, _ := io.ReadAll(res.Body)
		return res, string(body)
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/empty"}, {"GET", "/204"}, {"GET", "/304"}, {"GET", "/typed"},
		{"GET", "/sniffed"}, {"GET", "/chunked"}, {"HEAD", "/typed"},
	} {
		got, gotBody := answer(EngineSluice, tc.method, tc.path)
		want, wantBody := answer(EngineNetHTTP, tc.method, tc.path)
		for _, h := range []http.Header{got.Header, want.Header, got.Trailer, want.Trailer} {
			h.Del("X-Request-Id")
		}
		if got.StatusCode != want.StatusCode || gotBody != wantBody ||
			!reflect.DeepEqual(got.Header, want.Header) || !reflect.DeepEqual(got.Trailer, want.Trailer) {
			t.Errorf("%s %s:\nsluice   %d %v %v %q\nnet/http %d %v %v %q", tc.method, tc.path,
				got.StatusCode, got.Header, got.Trailer, gotBody, want.StatusCode, want.Header, want.Trailer, wantBody)
		}
		if got.Header.Get("X-Powered-By") != "Express" || got.Header.Get("X-Hop") != "" {
			t.Errorf("%s %s: fields %v", tc.method, tc.path, got.Header)
		}
	}
}

// Shutdown's deadline is a bound even for a raw-mode connection whose
// request still waits on its upstream: net.Conn.Close waits for readers to
// leave, and raw mode holds the socket's read side while it answers.
func TestRawModeShutdownDeadlineWithRequestInFlight(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "ok")
	})
	bothModes(t, func(t *testing.T) {
		s := New(Options{Log: quiet})
		if err := s.Apply([]EndpointConfig{{URL: "http://:80", Listen: "127.0.0.1:0", Upstream: up(b.URL)}}); err != nil {
			t.Fatal(err)
		}
		c := dialRaw(t, addr(t, s, "127.0.0.1:0"))
		for i := 0; i < 2; i++ {
			c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			if code, _ := c.answer(); code != 200 {
				t.Fatalf("warm-up: %d", code)
			}
		}
		c.send("GET /hang HTTP/1.1\r\nHost: a\r\n\r\n")
		time.Sleep(100 * time.Millisecond) // /hang is upstream now
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		done := make(chan struct{})
		go func() {
			s.Shutdown(ctx)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Fatal("Shutdown did not return at its deadline with a request in flight")
		}
	})
}

// An answer without a body is committed after the exchange is over (its
// state pooled and reused): its X-Request-Id must still be its own, the
// one the upstream got, whether the upstream's header map was handed to
// the writer or copied.
func TestBodylessAnswersKeepTheirRequestID(t *testing.T) {
	got := make(chan string, 1)
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("X-Request-Id")
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		case "/empty":
			w.Header().Set("Content-Length", "0")
		default:
			io.WriteString(w, "body")
		}
	})
	bothModes(t, func(t *testing.T) {
		s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(b.URL)})
		c := dialRaw(t, addr(t, s, "127.0.0.1:0"))
		for i := 0; i < 3; i++ { // later rounds reuse pooled exchange state
			for _, req := range []string{"GET /204", "GET /304", "GET /empty", "HEAD /body", "GET /body"} {
				c.send(req + " HTTP/1.1\r\nHost: a\r\n\r\n")
				c.c.SetReadDeadline(time.Now().Add(3 * time.Second))
				res, err := http.ReadResponse(c.br, &http.Request{Method: strings.Fields(req)[0]})
				if err != nil {
					t.Fatalf("%s: %v", req, err)
				}
				io.Copy(io.Discard, res.Body)
				want := <-got
				if id := res.Header.Get("X-Request-Id"); id == "" || id != want {
					t.Fatalf("%s: X-Request-Id %q, the upstream got %q", req, id, want)
				}
			}
		}
	})
}

// Empty lines before a request line are dropped, up to maxLeadingCRLF
// (RFC 9112 §2.2), the same in raw mode and with conn reads: the stray
// CRLF some clients send after a POST body must not cost the next
// pipelined request. Bare LF stays refused, more empty lines are a 400,
// and a connection that sends empty lines only ends at the read-header
// timeout, without an answer.
func TestH1LeadingCRLF(t *testing.T) {
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+r.URL.Path+" "+string(body))
	})
	bothModes(t, func(t *testing.T) {
		s := start(t, Options{Limits: Limits{ReadHeaderTimeout: 300 * time.Millisecond}},
			EndpointConfig{URL: "http://:80", Upstream: up(b.URL)})
		a := addr(t, s, "127.0.0.1:0")

		// Pipelined in one write, then in separate ones.
		c := dialRaw(t, a)
		c.send("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\r\nGET /g HTTP/1.1\r\nHost: a\r\n\r\n")
		for _, want := range []string{"POST /p abc", "GET /g "} {
			if code, body := c.answer(); code != 200 || body != want {
				t.Fatalf("pipelined: %d %q, want %q", code, body, want)
			}
		}
		c.send("POST /p2 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx\r\n")
		if code, body := c.answer(); code != 200 || body != "POST /p2 x" {
			t.Fatalf("POST with stray CRLF: %d %q", code, body)
		}
		time.Sleep(20 * time.Millisecond)
		c.send("\r\n\r\n")
		time.Sleep(20 * time.Millisecond)
		c.send("GET /g2 HTTP/1.1\r\nHost: a\r\n\r\n")
		if code, body := c.answer(); code != 200 || body != "GET /g2 " {
			t.Fatalf("GET after stray CRLFs: %d %q", code, body)
		}

		for _, tc := range []struct {
			req  string
			want int
		}{
			{"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 200},
			{strings.Repeat("\r\n", maxLeadingCRLF) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 200},
			{strings.Repeat("\r\n", maxLeadingCRLF+1) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
			{"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
			{"\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		} {
			c := dialRaw(t, a)
			c.send(tc.req)
			if code, _ := c.answer(); code != tc.want {
				t.Errorf("%q: %d, want %d", tc.req, code, tc.want)
			}
		}

		// Empty lines only: no answer, closed at the read-header timeout.
		for _, lines := range []string{"\r\n", "\r\n\r\n\r\n\r\n"} {
			c = dialRaw(t, a)
			c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			c.answer()
			c.send(lines)
			c.c.SetReadDeadline(time.Now().Add(3 * time.Second))
			start := time.Now()
			if n, err := c.br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("%q only: %d %v", lines, n, err)
			}
			if d := time.Since(start); d < 250*time.Millisecond {
				t.Fatalf("%q only: closed after %v, before the read-header timeout", lines, d)
			}
		}
	})
}
