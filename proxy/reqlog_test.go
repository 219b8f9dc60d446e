package proxy

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/exchange"
)

// Lines a policy logs through x.Log carry the request id (the one echoed in
// X-Request-Id), also through With and WithGroup.
func TestHookLogCarriesRequestID(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(lockedWriter{b: &buf, mu: &mu}, nil))
	h := &hooks{request: func(x *exchange.Exchange) error {
		x.Log.Info("from a policy", "k", "v")
		x.Log.With("action", "log").WithGroup("g").Info("grouped", "k", "w")
		return nil
	}}
	s := start(t, Options{Log: log}, EndpointConfig{URL: "http://:80", Upstream: up(named(t, "ok")), Hooks: h})
	res, _ := get(t, "http://"+addr(t, s, "127.0.0.1:0")+"/")
	id := res.Header.Get("X-Request-Id")
	if res.StatusCode != http.StatusOK || id == "" {
		t.Fatalf("status %d, id %q", res.StatusCode, id)
	}
	mu.Lock()
	defer mu.Unlock()
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		msg, _ := m["msg"].(string)
		if msg != "from a policy" && msg != "grouped" {
			continue
		}
		if m["request_id"] != id {
			t.Errorf("%q: request_id %v, want %s: %s", msg, m["request_id"], id, line)
		}
		seen[msg] = true
	}
	if !seen["from a policy"] || !seen["grouped"] {
		t.Errorf("policy lines not logged: %s", buf.String())
	}
}
