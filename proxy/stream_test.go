package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestStreamingUpload checks that a chunked upload reaches the upstream
// piece by piece, before the client finished sending.
func TestStreamingUpload(t *testing.T) {
	got := make(chan string, 10)
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != -1 || r.TransferEncoding[0] != "chunked" {
			t.Errorf("upstream saw cl=%d te=%v", r.ContentLength, r.TransferEncoding)
		}
		buf := make([]byte, 100)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				got <- string(buf[:n])
			}
			if err != nil {
				break
			}
		}
		io.WriteString(w, "done")
	})
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(b.URL)})
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "http://"+addr(t, s, "127.0.0.1:0")+"/", pr)
	resc := make(chan *http.Response, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
		}
		resc <- res
	}()
	for _, piece := range []string{"first", "second"} {
		pw.Write([]byte(piece))
		select {
		case g := <-got:
			if g != piece {
				t.Fatalf("got %q want %q", g, piece)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("piece %q not forwarded while the upload is open", piece)
		}
	}
	pw.Close()
	res := <-resc
	body, _ := io.ReadAll(res.Body)
	if string(body) != "done" {
		t.Fatalf("got %q", body)
	}
}

// TestStreamingResponses checks SSE and chunked responses are flushed event
// by event.
func TestStreamingResponses(t *testing.T) {
	next := make(chan struct{})
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/sse" {
			w.Header().Set("Content-Type", "text/event-stream")
		}
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-time.After(5 * time.Second):
				return
			}
		}
	})
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(b.URL)})
	for _, path := range []string{"/sse", "/chunked"} {
		res, err := http.Get("http://" + addr(t, s, "127.0.0.1:0") + path)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(res.Body)
		for i := 0; i < 3; i++ {
			line, err := br.ReadString('\n')
			if err != nil || line != fmt.Sprintf("data: %d\n", i) {
				t.Fatalf("%s event %d: %q %v", path, i, line, err)
			}
			br.ReadString('\n')
			next <- struct{}{} // the upstream sends the next event only now
		}
		res.Body.Close()
	}
}

// TestLargeBodies sends 4 MiB both ways and compares hashes.
func TestLargeBodies(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 256<<10) // 4 MiB
	sum := sha256.Sum256(big)
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
			return
		}
		if r.URL.Path == "/chunked" {
			w.Write(big[:1])
			w.(http.Flusher).Flush()
			w.Write(big[1:])
			return
		}
		w.Write(big)
	})
	s := start(t, Options{Limits: Limits{MaxBodyBytes: 8 << 20}}, EndpointConfig{URL: "http://:80", Upstream: up(b.URL)})
	a := "http://" + addr(t, s, "127.0.0.1:0")
	for _, p := range []string{"/", "/chunked"} {
		res, err := http.Get(a + p)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if sha256.Sum256(got) != sum {
			t.Fatalf("%s: response body differs (%d bytes)", p, len(got))
		}
	}
	for _, chunked := range []bool{false, true} {
		var body io.Reader = bytes.NewReader(big)
		if chunked {
			body = io.MultiReader(body) // hides the length
		}
		res, err := http.Post(a+"/", "application/octet-stream", body)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if want := fmt.Sprintf("%d %x", len(big), sum); string(got) != want {
			t.Fatalf("chunked=%v: upstream got %q want %q", chunked, got, want)
		}
	}
}

func TestHTTP1Trailers(t *testing.T) {
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "body;req-trailer="+r.Trailer.Get("X-Req-Sum"))
		w.Header().Set("X-Checksum", "abc")
	})
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(b.URL)})
	req, _ := http.NewRequest("POST", "http://"+addr(t, s, "127.0.0.1:0")+"/", io.MultiReader(strings.NewReader("x")))
	req.Trailer = http.Header{"X-Req-Sum": {"42"}}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "body;req-trailer=42" || res.Trailer.Get("X-Checksum") != "abc" {
		t.Fatalf("body %q trailer %v", body, res.Trailer)
	}
}

func TestWebSocket(t *testing.T) {
	upg := websocket.Upgrader{}
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		c, err := upg.Upgrade(w, r, http.Header{"X-Up": {"1"}})
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			c.WriteMessage(mt, append([]byte("echo:"), m...))
		}
	})
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(b.URL)})
	c, res, err := websocket.DefaultDialer.Dial("ws://"+addr(t, s, "127.0.0.1:0")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if res.Header.Get("X-Up") != "1" || res.Header.Get("X-Request-Id") == "" {
		t.Errorf("101 headers: %v", res.Header)
	}
	for i := 0; i < 3; i++ {
		msg := strings.Repeat("m", i*5000+1)
		c.WriteMessage(websocket.TextMessage, []byte(msg))
		_, got, err := c.ReadMessage()
		if err != nil || string(got) != "echo:"+msg {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	// A refused upgrade is an ordinary response.
	b2 := backend(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no ws", 400) })
	s2 := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(b2.URL)})
	_, res, err = websocket.DefaultDialer.Dial("ws://"+addr(t, s2, "127.0.0.1:0")+"/ws", nil)
	if err == nil || res == nil || res.StatusCode != 400 {
		t.Fatalf("refused upgrade: %v %v", err, res)
	}
}

// TestUpgradeHalfClose pipes a raw Upgrade protocol and checks that a
// client half-close reaches the upstream while the other direction stays
// open.
func TestUpgradeHalfClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil || req.Header.Get("Upgrade") != "myproto" {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: myproto\r\n\r\nhello ")
		rest, _ := io.ReadAll(br) // until the half-close
		c.Write([]byte("got:" + string(rest)))
	}()
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up("http://" + ln.Addr().String())})
	c, err := net.Dial("tcp", addr(t, s, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Before the 101 a client EOF means "gone" to net/http, so the client
	// half-closes only once the protocol switched.
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: myproto\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	head, _ := br.Peek(12)
	if string(head) != "HTTP/1.1 101" {
		t.Fatalf("head %q", head)
	}
	io.WriteString(c, "abc")
	c.(*net.TCPConn).CloseWrite()
	all, _ := io.ReadAll(br)
	s1 := string(all)
	if !strings.HasPrefix(s1, "HTTP/1.1 101") || !strings.HasSuffix(s1, "\r\n\r\nhello got:abc") {
		t.Fatalf("got %q", s1)
	}
}

func TestWebSocketOverTLS(t *testing.T) {
	upg := websocket.Upgrader{}
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		c, err := upg.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		mt, m, _ := c.ReadMessage()
		c.WriteMessage(mt, append([]byte(r.Header.Get("X-Forwarded-Proto")+":"), m...))
	})
	pair, pool := selfSigned(t, "ws.test")
	s := start(t, Options{}, EndpointConfig{URL: "https://ws.test:443", TLS: []certPair{pair}, Upstream: up(b.URL)})
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "ws.test"}}
	c, _, err := d.Dial("wss://"+addr(t, s, "127.0.0.1:0")+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(websocket.TextMessage, []byte("hi"))
	if _, m, err := c.ReadMessage(); err != nil || string(m) != "https:hi" {
		t.Fatalf("%q %v", m, err)
	}
}
