package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// An upstream's interim (1xx) answers are bounded per request
// (docs/proxy.md): at most 5 103 Early Hints reach the client, and an
// upstream that keeps sending 1xx (300 here) gets the request failed with
// 502 instead of flooding the client or holding the request.
func TestHostileUpstreamInterimFlood(t *testing.T) {
	t.Parallel()
	u := newScriptUpstream(t)
	hint := "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload; as=style\r\n\r\n"
	final := "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"
	u.answer("/few", strings.Repeat(hint, 3)+final)
	u.answer("/ten", strings.Repeat(hint, 10)+final)
	u.answer("/mixed", strings.Repeat("HTTP/1.1 102 Processing\r\n\r\n", 20)+strings.Repeat(hint, 8)+final)
	u.answer("/flood", strings.Repeat(hint, 300)+final)
	u.answer("/processing", strings.Repeat("HTTP/1.1 102 Processing\r\n\r\n", 300)+final)
	u.answer("/blanks", "\r\n\r\n"+final)
	u.answer("/blank-flood", strings.Repeat("\r\n", 64)+final)
	e := startEdge(t, u.ln.Addr().String(), "")

	for _, tc := range []struct {
		path   string
		hints  int
		status int
	}{
		{"/few", 3, 200},
		{"/ten", 5, 200},
		{"/mixed", 5, 200},
		{"/flood", 5, 502},
		{"/processing", 0, 502},
		{"/blanks", 0, 200},      // a few stray blank lines are tolerated
		{"/blank-flood", 0, 502}, // an endless run is no answer
	} {
		t.Run(tc.path, func(t *testing.T) {
			c := dialRaw(t, e.addr)
			c.send("GET " + tc.path + " HTTP/1.1\r\nHost: h.test\r\n\r\n")
			var interim []int
			c.c.SetReadDeadline(time.Now().Add(waitTimeout))
			for {
				res, body, err := c.response("GET")
				if err != nil {
					t.Fatalf("after %d interim answers: %v", len(interim), err)
				}
				if res.StatusCode < 200 {
					interim = append(interim, res.StatusCode)
					continue
				}
				if res.StatusCode != tc.status {
					t.Errorf("final status %d %q, want %d", res.StatusCode, body, tc.status)
				}
				if tc.status == 502 && !strings.Contains(body, "upstream sent an invalid response (request id ") {
					t.Errorf("502 body %q", body)
				}
				break
			}
			want := strings.TrimSpace(strings.Repeat("103 ", tc.hints))
			if got := strings.Trim(fmt.Sprint(interim), "[]"); got != want {
				t.Errorf("%d interim answers (%v...), want %d × 103", len(interim), interim[:min(len(interim), 8)], tc.hints)
			}
		})
	}
	// The flooding upstream's connections are not reused: a clean request
	// still gets its own answer.
	if code, body, _ := get(t, e.addr, "h.test", "/clean"); code != http.StatusOK || body != "own /clean" {
		t.Errorf("after the floods: %d %q", code, body)
	}
}

// response_header_timeout bounds the wait for the final head, interim
// answers included: an upstream that drips a 102 every 300 ms never
// restarts it, and the client gets a 504 about when the timeout ends.
func TestHostileUpstreamInterimDrip(t *testing.T) {
	t.Parallel()
	ln := serveRaw(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		for i := 0; i < 30; i++ {
			if _, err := io.WriteString(c, "HTTP/1.1 102 Processing\r\n\r\n"); err != nil {
				return
			}
			time.Sleep(300 * time.Millisecond)
		}
	})
	e := startEdge(t, ln.Addr().String(), "  response_header_timeout: 1s\n")
	start := time.Now()
	code, body, _ := get(t, e.addr, "h.test", "/drip")
	took := time.Since(start)
	if code != http.StatusGatewayTimeout || took > 4*time.Second {
		t.Fatalf("got %d %q after %v, want 504 within about 1-2 s", code, body, took)
	}
}
