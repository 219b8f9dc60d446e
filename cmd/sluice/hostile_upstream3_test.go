package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// scriptUpstream is a raw TCP backend on persistent connections: it parses
// every request with http.ReadRequest, records which accepted connection
// carried it, and writes the fixed bytes registered for its path (or a
// clean "own <path>" answer). It tells whether sluice reuses, drops or
// closes an upstream connection after a hostile answer.
type scriptUpstream struct {
	ln net.Listener

	mu      sync.Mutex
	conns   int          // connections accepted so far
	ended   map[int]bool // connections whose peer (sluice) closed them
	seen    []seenReq
	answers map[string]scriptAnswer
}

// scriptAnswer is the raw answer for a path; close ends the connection
// after it (a close-delimited body).
type scriptAnswer struct {
	raw   func(r *http.Request) string
	close bool
}

// seenReq is one request as the scripted upstream parsed it.
type seenReq struct {
	conn                     int // 1-based accept order
	method, uri, host, reqID string
}

func newScriptUpstream(t *testing.T) *scriptUpstream {
	t.Helper()
	u := &scriptUpstream{ended: map[int]bool{}, answers: map[string]scriptAnswer{}}
	u.ln = serveRaw(t, u.serve)
	return u
}

func (u *scriptUpstream) serve(c net.Conn) {
	u.mu.Lock()
	u.conns++
	id := u.conns
	u.mu.Unlock()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			if err == io.EOF {
				u.mu.Lock()
				u.ended[id] = true
				u.mu.Unlock()
			}
			return
		}
		io.Copy(io.Discard, req.Body)
		u.mu.Lock()
		u.seen = append(u.seen, seenReq{conn: id, method: req.Method, uri: req.RequestURI,
			host: req.Host, reqID: req.Header.Get("X-Request-Id")})
		a, ok := u.answers[req.URL.Path]
		u.mu.Unlock()
		out := ownAnswer(req.URL.Path)
		if ok {
			out = a.raw(req)
		}
		if _, err := io.WriteString(c, out); err != nil || a.close {
			return
		}
	}
}

// ownAnswer is the clean answer for a path the test did not script.
func ownAnswer(path string) string {
	body := "own " + path
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// answer registers fixed bytes for path, on a connection kept open.
func (u *scriptUpstream) answer(path, raw string) {
	u.answerFunc(path, func(*http.Request) string { return raw })
}

func (u *scriptUpstream) answerFunc(path string, raw func(r *http.Request) string) {
	u.setAnswer(path, scriptAnswer{raw: raw})
}

// answerThenClose registers bytes after which the upstream closes.
func (u *scriptUpstream) answerThenClose(path, raw string) {
	u.setAnswer(path, scriptAnswer{raw: func(*http.Request) string { return raw }, close: true})
}

func (u *scriptUpstream) setAnswer(path string, a scriptAnswer) {
	u.mu.Lock()
	u.answers[path] = a
	u.mu.Unlock()
}

func (u *scriptUpstream) requests() []seenReq {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seenReq(nil), u.seen...)
}

func (u *scriptUpstream) accepted() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.conns
}

// endedWithin reports whether sluice closed upstream connection id within d.
func (u *scriptUpstream) endedWithin(id int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		u.mu.Lock()
		ended := u.ended[id]
		u.mu.Unlock()
		if ended || time.Now().After(deadline) {
			return ended
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// roundTrip sends one request on the client connection and reads its
// answer, failing the test when none can be parsed. head is the answer's
// head as it came on the wire (net/http's parser drops some fields, such
// as a Content-Length next to chunked coding).
func (r *rawConn) roundTrip(method, path string) (res *http.Response, body, head string) {
	r.t.Helper()
	r.send(method + " " + path + " HTTP/1.1\r\nHost: h.test\r\n\r\n")
	head = r.peekHead()
	res, body, err := r.response(method)
	if err != nil {
		r.t.Fatalf("%s %s: no parsable answer on the keep-alive connection: %v (head %q)", method, path, err, head)
	}
	return res, body, head
}

// peekHead returns the next response head without consuming it, so that
// stray bytes after an answer still reach the next parse.
func (r *rawConn) peekHead() string {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		b, _ := r.br.Peek(r.br.Buffered())
		if i := strings.Index(string(b), "\r\n\r\n"); i >= 0 {
			return string(b[:i+4])
		}
		// Wait for at least one more byte.
		if _, err := r.br.Peek(len(b) + 1); err != nil {
			r.t.Fatalf("no complete response head: %v (got %q)", err, b)
		}
	}
}

// fieldCount counts the fields called name (any case) in a raw head.
func fieldCount(head, name string) int {
	return strings.Count(strings.ToLower(head), "\r\n"+strings.ToLower(name)+":")
}

// An upstream answer with both Content-Length and Transfer-Encoding is a
// response-splitting attempt (RFC 9112 §6.3): sluice must frame it by the
// chunked coding alone and must not pool the connection, whose framing
// can no longer be trusted; the next request goes out on a new one.
func TestHostileUpstreamCLTENotReused(t *testing.T) {
	t.Parallel()
	u := newScriptUpstream(t)
	u.answer("/clte", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	e := startEdge(t, u.ln.Addr().String(), "")
	c := dialRaw(t, e.addr)

	// Control: sluice pools a clean connection, so a new connection after
	// /clte is sluice's decision, not the absence of pooling.
	for _, p := range []string{"/clean1", "/clean2"} {
		if res, body, _ := c.roundTrip("GET", p); res.StatusCode != 200 || body != "own "+p {
			t.Fatalf("GET %s: got %d %q, want 200 %q", p, res.StatusCode, body, "own "+p)
		}
	}
	res, body, head := c.roundTrip("GET", "/clte")
	if res.StatusCode != 200 || body != "hello" {
		t.Fatalf("GET /clte: got %d %q, want 200 \"hello\" (framed by Transfer-Encoding, not Content-Length: 3)", res.StatusCode, body)
	}
	if fieldCount(head, "Content-Length") != 0 || fieldCount(head, "Transfer-Encoding") != 1 {
		t.Fatalf("GET /clte: want the client's answer framed by one Transfer-Encoding and no Content-Length, got head:\n%s", head)
	}
	if res, body, _ := c.roundTrip("GET", "/next"); res.StatusCode != 200 || body != "own /next" {
		t.Fatalf("GET /next after /clte: got %d %q, want 200 \"own /next\"", res.StatusCode, body)
	}

	reqs := u.requests()
	if len(reqs) != 4 {
		t.Fatalf("upstream saw %d requests %+v, want 4 (/clean1 /clean2 /clte /next)", len(reqs), reqs)
	}
	if reqs[0].conn != reqs[1].conn {
		t.Fatalf("control: two clean requests in a row used upstream connections %d and %d, want one pooled connection", reqs[0].conn, reqs[1].conn)
	}
	if reqs[3].conn == reqs[2].conn {
		t.Fatalf("/next reused upstream connection %d after its CL+TE answer; want a new connection", reqs[2].conn)
	}
	if n := u.accepted(); n != 2 {
		t.Fatalf("upstream accepted %d connections, want 2 (the pooled one, then a new one after CL+TE)", n)
	}
	if !u.endedWithin(reqs[2].conn, closeWait) {
		t.Fatalf("sluice left the CL+TE upstream connection %d open (neither reused nor closed)", reqs[2].conn)
	}
}

// Bytes an upstream sends past its answer (after a Content-Length body,
// or a body on a 204) are never delivered, and the client's next request
// on the same keep-alive connection gets the answer to its own path:
// no response queue poisoning.
func TestHostileUpstreamExtraBytesSameClient(t *testing.T) {
	t.Parallel()
	u := newScriptUpstream(t)
	u.answer("/extra", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab"+
		"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")
	u.answer("/204cl", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello")
	e := startEdge(t, u.ln.Addr().String(), "")

	t.Run("after-content-length", func(t *testing.T) {
		c := dialRaw(t, e.addr)
		for i := 0; i < 3; i++ {
			res, body, _ := c.roundTrip("GET", "/extra")
			if res.StatusCode != 200 || body != "ab" {
				t.Fatalf("round %d GET /extra: got %d %q, want 200 \"ab\"", i, res.StatusCode, body)
			}
			own := fmt.Sprintf("/own%d", i)
			res, body, _ = c.roundTrip("GET", own)
			if res.StatusCode != 200 || body != "own "+own {
				t.Fatalf("round %d GET %s after /extra: got %d %q, want 200 %q (the upstream's extra bytes became this answer?)", i, own, res.StatusCode, body, "own "+own)
			}
		}
	})
	t.Run("204-with-body", func(t *testing.T) {
		c := dialRaw(t, e.addr)
		for i := 0; i < 3; i++ {
			res, body, head := c.roundTrip("GET", "/204cl")
			if res.StatusCode != 204 || body != "" {
				t.Fatalf("round %d GET /204cl: got %d %q, want 204 with no body", i, res.StatusCode, body)
			}
			// RFC 9110 §8.6: no Content-Length in a 204.
			if fieldCount(head, "Content-Length") != 0 || fieldCount(head, "Transfer-Encoding") != 0 {
				t.Fatalf("round %d GET /204cl: a framing field forwarded on a 204:\n%s", i, head)
			}
			// A 204 has no body whatever its Content-Length says: any byte
			// of "hello" on the wire would break the next answer's parse.
			own := fmt.Sprintf("/own%d", i)
			res, body, _ = c.roundTrip("GET", own)
			if res.StatusCode != 200 || body != "own "+own {
				t.Fatalf("round %d GET %s after /204cl: got %d %q, want 200 %q", i, own, res.StatusCode, body, "own "+own)
			}
		}
	})
}

// Upstream answers sluice cannot frame or forward safely become a 502;
// interim answers are absorbed; a close-delimited body is re-framed.
func TestHostileUpstreamAnswers(t *testing.T) {
	t.Parallel()
	u := newScriptUpstream(t)
	e := startEdge(t, u.ln.Addr().String(), "")
	for _, tc := range []struct {
		name, raw string
		close     bool   // the upstream closes after raw
		status    int    // the client's final status
		body      string // when 200: the exact body
		chunked   bool   // when 200: the client's answer is chunked
		reuse     bool   // the client connection serves another request after
	}{
		{name: "two-content-lengths", raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", status: 502},
		{name: "bare-cr-in-value", raw: "HTTP/1.1 200 OK\r\nX-A: b\rX-B: c\r\nContent-Length: 2\r\n\r\nok", status: 502},
		{name: "obs-fold", raw: "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 2\r\n\r\nok", status: 502},
		{name: "obs-fold-tab", raw: "HTTP/1.1 200 OK\r\nX-A: b\r\n\tc\r\nContent-Length: 2\r\n\r\nok", status: 502},
		{name: "status-2000", raw: "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", status: 502},
		{name: "http09-no-status-line", raw: "hello from 1991\r\n", close: true, status: 502},
		// A body that breaks before any of the answer was sent: a whole
		// 502, and the client connection stays usable. (A head that came
		// alone was already sent on: its body breaking cuts the answer.)
		{name: "bad-first-chunk", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", status: 502, reuse: true},
		{name: "100-then-200", raw: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal", status: 200, body: "final"},
		{name: "close-delimited", raw: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat("0123456789", 1000) + "end",
			close: true, status: 200, body: strings.Repeat("0123456789", 1000) + "end", chunked: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/" + tc.name
			if tc.close {
				u.answerThenClose(path, tc.raw)
			} else {
				u.answer(path, tc.raw)
			}
			c := dialRaw(t, e.addr)
			res, body, _ := c.roundTrip("GET", path)
			if res.StatusCode != tc.status {
				t.Fatalf("GET %s: got %d %q, want %d", path, res.StatusCode, body, tc.status)
			}
			if res.StatusCode == 200 && body != tc.body {
				t.Fatalf("GET %s: body %q (%d bytes), want %d bytes ending %q", path, body[max(0, len(body)-20):], len(body), len(tc.body), tc.body[max(0, len(tc.body)-20):])
			}
			if res.StatusCode == 200 && strings.ContainsAny(res.Header.Get("X-A"), "\r\n") {
				t.Fatalf("GET %s: a CR or LF in an upstream header reached the client: %q", path, res.Header)
			}
			if tc.chunked && (len(res.TransferEncoding) != 1 || res.TransferEncoding[0] != "chunked" || res.Close) {
				t.Fatalf("GET %s: Transfer-Encoding %q, Close %v; want a chunked, keep-alive HTTP/1.1 answer", path, res.TransferEncoding, res.Close)
			}
			if tc.status == 502 && !strings.Contains(body, "request id") {
				t.Fatalf("GET %s: 502 body %q names no request id", path, body)
			}
			if tc.chunked || tc.reuse {
				// Re-framed or answered whole: the client connection is still usable.
				if res, body, _ := c.roundTrip("GET", "/after"); res.StatusCode != 200 || body != "own /after" {
					t.Fatalf("GET /after the close-delimited answer: got %d %q, want 200 \"own /after\"", res.StatusCode, body)
				}
			}
		})
	}
}

// A request-target with a fragment is refused without contacting the
// upstream (never forwarded as /a%23b); an absolute-form target's
// authority wins over the Host header (RFC 9112 §3.2.2).
func TestHostileRequestTarget(t *testing.T) {
	t.Parallel()
	u := newScriptUpstream(t)
	e := startEdge(t, u.ln.Addr().String(), "")

	t.Run("fragment", func(t *testing.T) {
		c := dialRaw(t, e.addr)
		c.send("GET /a#b HTTP/1.1\r\nHost: h.test\r\n\r\n")
		res, body, err := c.response("GET")
		if err != nil {
			t.Fatalf("GET /a#b: no answer: %v", err)
		}
		if res.StatusCode != 400 {
			t.Fatalf("GET /a#b: got %d %q, want 400", res.StatusCode, body)
		}
		if n, reqs := u.accepted(), u.requests(); n != 0 || len(reqs) != 0 {
			t.Fatalf("GET /a#b was refused but the upstream got %d connections and requests %+v, want none", n, reqs)
		}
	})
	t.Run("absolute-form", func(t *testing.T) {
		n0 := len(u.requests())
		c := dialRaw(t, e.addr)
		c.send("GET http://a.example/host?x=1 HTTP/1.1\r\nHost: b.example\r\n\r\n")
		res, body, err := c.response("GET")
		if err != nil {
			t.Fatalf("absolute-form: no answer: %v", err)
		}
		if res.StatusCode != 200 || body != "own /host" {
			t.Fatalf("absolute-form: got %d %q, want 200 \"own /host\"", res.StatusCode, body)
		}
		reqs := u.requests()[n0:]
		if len(reqs) != 1 {
			t.Fatalf("absolute-form: upstream saw %d requests %+v, want 1", len(reqs), reqs)
		}
		if reqs[0].host != "a.example" || reqs[0].uri != "/host?x=1" {
			t.Fatalf("absolute-form: upstream saw Host %q, request-URI %q; want Host a.example, request-URI /host?x=1", reqs[0].host, reqs[0].uri)
		}
	})
}

// Every answer without a body (204, 304, a HEAD, Content-Length: 0)
// carries the X-Request-Id the upstream received, request after request
// on one keep-alive connection: the bodyless path once sent it empty.
func TestHostileBodylessRequestID(t *testing.T) {
	t.Parallel()
	u := newScriptUpstream(t)
	// Each answer echoes the id the upstream received.
	echo := func(head string) func(*http.Request) string {
		return func(r *http.Request) string {
			return head + "X-Upstream-Saw: " + r.Header.Get("X-Request-Id") + "\r\n\r\n"
		}
	}
	u.answerFunc("/204", echo("HTTP/1.1 204 No Content\r\n"))
	u.answerFunc("/304", echo("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n"))
	u.answerFunc("/head", echo("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"))
	u.answerFunc("/cl0", echo("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"))
	e := startEdge(t, u.ln.Addr().String(), "")

	c := dialRaw(t, e.addr)
	ids := map[string]string{}
	for round := 0; round < 3; round++ {
		for _, tc := range []struct {
			method, path string
			status       int
		}{{"GET", "/204", 204}, {"GET", "/304", 304}, {"HEAD", "/head", 200}, {"GET", "/cl0", 200}} {
			res, body, _ := c.roundTrip(tc.method, tc.path)
			what := fmt.Sprintf("round %d %s %s", round, tc.method, tc.path)
			if res.StatusCode != tc.status || body != "" {
				t.Fatalf("%s: got %d %q, want %d with no body", what, res.StatusCode, body, tc.status)
			}
			id, saw := res.Header.Get("X-Request-Id"), res.Header.Get("X-Upstream-Saw")
			if saw == "" {
				t.Fatalf("%s: the upstream received no X-Request-Id", what)
			}
			if id != saw {
				t.Fatalf("%s: client got X-Request-Id %q, the upstream received %q; want the same non-empty id", what, id, saw)
			}
			if prev, dup := ids[id]; dup {
				t.Fatalf("%s: X-Request-Id %q already answered %s", what, id, prev)
			}
			ids[id] = what
		}
	}
	if reqs := u.requests(); len(reqs) != 12 {
		t.Fatalf("upstream saw %d requests, want 12", len(reqs))
	}
}

// An upstream whose answers break before any byte was sent is answered
// with a 502 and still ejected by passive health: after its first failure
// every request goes to the healthy one.
func TestBrokenBodyCountsForPassiveHealth(t *testing.T) {
	t.Parallel()
	bad := newScriptUpstream(t)
	bad.answer("/", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
	good := newBackend(t, "good")
	cfg := writeConfig(t, t.TempDir(), fmt.Sprintf(`
log: {format: json}
endpoints:
  - url: http://:80
    listen: 127.0.0.1:0
    upstream: [http://%s, %s]
    load_balancing:
      policy: round_robin
      passive: {max_fails: 1, fail_window: 1m, eject_duration: 1m}
`, bad.ln.Addr(), good.port()))
	p := start(t, "serve", "-c", cfg)
	addr := p.addr("127.0.0.1:0")
	var codes []int
	for i := 0; i < 6; i++ {
		res, err := newClient().Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		codes = append(codes, res.StatusCode)
	}
	bad502 := 0
	for _, c := range codes {
		if c == 502 {
			bad502++
		} else if c != 200 {
			t.Fatalf("statuses %v: want only 200 and 502", codes)
		}
	}
	if bad502 != 1 {
		t.Fatalf("statuses %v: want one 502 (the broken upstream's first answer), then ejection", codes)
	}
}

// An answer that an upstream sends later, on a connection idle in
// sluice's pool (after a complete answer, or a 408 before an idle close),
// is never served as another request's answer: another client's request
// on the pooled connection would otherwise read it (response queue
// poisoning). Every reuse checks the socket first.
func TestHostileUpstreamLateExtraAnswer(t *testing.T) {
	t.Parallel()
	ln := serveRaw(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if req.URL.Path == "/late" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				time.Sleep(100 * time.Millisecond)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")
				continue
			}
			body := "own " + req.URL.Path
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		}
	})
	e := startEdge(t, ln.Addr().String(), "")
	if res, body, _ := dialRaw(t, e.addr).roundTrip("GET", "/late"); res.StatusCode != 200 || body != "ok" {
		t.Fatalf("GET /late: got %d %q, want 200 \"ok\"", res.StatusCode, body)
	}
	time.Sleep(300 * time.Millisecond) // the extra answer waits in the pooled connection
	res, body, _ := dialRaw(t, e.addr).roundTrip("GET", "/victim")
	if res.StatusCode != 200 || body != "own /victim" {
		t.Fatalf("another client's GET /victim: got %d %q, want 200 \"own /victim\" (the upstream's late extra answer was served to it)", res.StatusCode, body)
	}
}
