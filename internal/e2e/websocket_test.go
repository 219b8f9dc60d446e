package e2e

// Policies apply to WebSocket upgrades like to any request: request-phase
// changes reach the upstream's handshake, the 101 passes the response
// phase, and a denied upgrade never reaches the upstream.

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestWebSocketUpgradeThroughPolicy(t *testing.T) {
	up := websocket.Upgrader{}
	respond := func(w http.ResponseWriter, r *http.Request, s *seen) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.WriteMessage(websocket.TextMessage, []byte("policy header: "+r.Header.Get("X-Policy")))
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			c.WriteMessage(mt, msg)
		}
	}
	e := startWith(t, setup{Respond: respond}, ep{URL: "http://app.test", Policy: `
on_http_request:
  - expressions:
      - req.url.path == '/ws-denied'
    actions:
      - type: deny
  - actions:
      - type: add-headers
        config:
          headers: {x-policy: "${req.headers['upgrade'][0]}"}
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers: {x-res-status: "${res.status_code}"}
`})
	addr := e.addr("")
	d := websocket.Dialer{
		HandshakeTimeout: 5 * time.Second,
		NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		},
	}
	c, res, err := d.Dial("ws://app.test/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if got := res.Header.Get("X-Res-Status"); got != "101" {
		t.Errorf("101 response header x-res-status %q, want 101", got)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := c.ReadMessage()
	if err != nil || string(msg) != "policy header: websocket" {
		t.Fatalf("first message %q, %v", msg, err)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err = c.ReadMessage(); err != nil || string(msg) != "ping" {
		t.Fatalf("echo %q, %v", msg, err)
	}

	before := e.back.hits.Load()
	_, res, err = d.Dial("ws://app.test/ws-denied", nil)
	if err == nil || res == nil || res.StatusCode != 403 {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("denied upgrade: status %d, %v; want a 403 handshake failure", status, err)
	}
	if res.Header.Get("X-Res-Status") != "403" {
		t.Errorf("denied upgrade did not pass the response phase: x-res-status %q", res.Header.Get("X-Res-Status"))
	}
	if e.back.hits.Load() != before {
		t.Error("denied upgrade reached the upstream")
	}
}
