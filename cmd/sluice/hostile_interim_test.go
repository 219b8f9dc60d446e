package main

import (
	"fmt"
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
