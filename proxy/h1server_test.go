package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// echoBackend answers with the method, the body it read and any trailer.
func echoBackend(t *testing.T) string {
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s body=%s trailer=%s", r.Method, r.URL.RequestURI(), body, r.Trailer.Get("X-T"))
	})
	return b.URL
}

func TestH1Pipelining(t *testing.T) {
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(echoBackend(t))})
	a := addr(t, s, "127.0.0.1:0")
	got := raw(t, a, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"+
		"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"+
		"POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nde\r\n1;ext=1\r\nf\r\n0\r\nX-T: tv\r\n\r\n"+
		"GET /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	want := []string{"GET /1 body=", "POST /2 body=abc", "POST /3 body=def trailer=tv", "GET /4 body="}
	last := -1
	for _, w := range want {
		i := strings.Index(got, w)
		if i <= last {
			t.Fatalf("answers out of order or missing %q in %q", w, got)
		}
		last = i
	}
	if n := strings.Count(got, "HTTP/1.1 200 OK"); n != 4 {
		t.Fatalf("%d answers: %q", n, got)
	}
}

func TestH1ExpectContinueAndHTTP10(t *testing.T) {
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(echoBackend(t))})
	a := addr(t, s, "127.0.0.1:0")
	c, err := net.Dial("tcp", a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	line, _ := br.ReadString('\n')
	if line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("got %q before the body", line)
	}
	br.ReadString('\n')
	io.WriteString(c, "hello")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if string(b) != "POST /e body=hello trailer=" {
		t.Fatalf("%q", b)
	}

	// HTTP/1.0 keep-alive is honoured; without it the connection closes.
	io.WriteString(c, "GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	res, err = http.ReadResponse(br, nil)
	if err != nil || res.Header.Get("Connection") != "keep-alive" {
		t.Fatalf("%v %v", err, res)
	}
	io.ReadAll(res.Body)
	io.WriteString(c, "GET /c HTTP/1.0\r\n\r\n")
	res, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(res.Body)
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("HTTP/1.0 connection without keep-alive left open: %v", err)
	}
}

func TestH1Refusals(t *testing.T) {
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(echoBackend(t))})
	a := addr(t, s, "127.0.0.1:0")
	for _, tc := range []struct{ req, want string }{
		{"GET / HTTP/1.1\nHost: a\n\n", "400"},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", "400"},
		{"GET * HTTP/1.1\r\nHost: a\r\n\r\n", "400"},
		{"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", "400"}, // a fragment would be forwarded as /a%23b
		{"GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", "417"},
		{"GET / HTTP/3.0\r\nHost: a\r\n\r\n", "505"},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "400"}, // chunked twice: not final once
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "400"},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "501"},
		{"GET /" + strings.Repeat("a", 70<<10) + " HTTP/1.1\r\nHost: a\r\n\r\n", "414"},
		{"GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-A: b\r\n", 300) + "\r\n", "431"},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", "400"},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + strings.Repeat("X-T: aaaaaaaaaaaaaaaa\r\n", 2000) + "\r\n", "400"},
	} {
		got := raw(t, a, tc.req)
		if !strings.HasPrefix(got, "HTTP/1.1 "+tc.want) || !strings.Contains(got, "Connection: close") {
			t.Errorf("%.60q: got %.120q", tc.req, got)
		}
	}
}

// A request whose final transfer coding is not chunked is a 400 and a
// close (RFC 9112 §6.3), one with a coding sluice does not implement a
// 501 (§6.1), under either HTTP/1.x engine.
func TestH1TransferCodings(t *testing.T) {
	for _, engine := range []string{EngineSluice, EngineNetHTTP} {
		t.Run(engine, func(t *testing.T) {
			s := start(t, Options{HTTP1Engine: engine}, EndpointConfig{URL: "http://:80", Upstream: up(echoBackend(t))})
			a := addr(t, s, "127.0.0.1:0")
			for _, tc := range []struct{ te, want string }{
				{"chunked, gzip", "400"},
				{"chunked, identity", "400"},
				{"chunked,", "400"},
				{"chunked\r\nTransfer-Encoding: gzip", "400"},
				{"gzip, chunked", "501"},
				{"gzip", "501"},
				{"xchunked", "501"},
			} {
				got := raw(t, a, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "+tc.te+"\r\n\r\n0\r\n\r\n"+
					"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
				if !strings.HasPrefix(got, "HTTP/1.1 "+tc.want) || !strings.Contains(got, "Connection: close") ||
					strings.Count(got, "HTTP/1.1 ") != 1 {
					t.Errorf("%q: got %.160q", tc.te, got)
				}
			}
		})
	}
}

// Shutdown closes idle engine connections at once and lets an active
// request finish.
func TestH1ShutdownIdle(t *testing.T) {
	s := New(Options{Log: quiet})
	if err := s.Apply([]EndpointConfig{{URL: "http://:80", Listen: "127.0.0.1:0", Upstream: up(echoBackend(t))}}); err != nil {
		t.Fatal(err)
	}
	a := addr(t, s, "127.0.0.1:0")
	c, err := net.Dial("tcp", a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(res.Body)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown did not drain an idle connection: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection not closed: %v", err)
	}
}

// The net/http engine stays available as a fallback.
func TestH1EngineNetHTTPFallback(t *testing.T) {
	s := start(t, Options{HTTP1Engine: EngineNetHTTP}, EndpointConfig{URL: "http://:80", Upstream: up(echoBackend(t))})
	a := addr(t, s, "127.0.0.1:0")
	got := raw(t, a, "GET /f HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if !strings.Contains(got, "GET /f body=") || strings.Contains(got, "Date:") == false {
		t.Fatalf("%q", got)
	}
}
