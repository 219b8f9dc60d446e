package actions

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/sluicehq/sluice/policy"
)

func TestLog(t *testing.T) {
	a := mustBuild(t, "log", policy.OnHTTPRequest, `
metadata:
  message: Log action executed.
  endpoint_id: ${endpoint.id}
  path_len: ${size(req.url.path)}
  fixed: 7
`)
	var buf bytes.Buffer
	s := newState(t, policy.OnHTTPRequest, "GET", "https://example.com/abc", "127.0.0.1:1")
	// A request's logger carries its request id (the proxy's does); the
	// action must not add it a second time.
	s.Log = slog.New(slog.NewJSONHandler(&buf, nil)).With("request_id", s.X.ID)
	if err := a.Run(s); err != nil {
		t.Fatal(err)
	}
	var line struct {
		Msg       string         `json:"msg"`
		RequestID string         `json:"request_id"`
		Metadata  map[string]any `json:"metadata"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	if line.Msg != "traffic policy log" || line.RequestID != "req_1" {
		t.Errorf("line = %+v", line)
	}
	if n := bytes.Count(buf.Bytes(), []byte(`"request_id"`)); n != 1 {
		t.Errorf("request_id appears %d times in %s", n, buf.Bytes())
	}
	want := map[string]any{"message": "Log action executed.", "endpoint_id": "ep_test", "path_len": float64(4), "fixed": float64(7)}
	for k, v := range want {
		if line.Metadata[k] != v {
			t.Errorf("metadata[%s] = %#v, want %#v", k, line.Metadata[k], v)
		}
	}
	if got := result(t, s, "actions.ngrok.log.metadata.endpoint_id"); got != "ep_test" {
		t.Errorf("result = %v", got)
	}
}

func TestLogConfigErrors(t *testing.T) {
	for _, tt := range []struct{ config, want string }{
		{``, "metadata: at least one entry"},
		{`metadata: {}`, "at least one entry"},
		{`metadata: {a: "${nope}"}`, "nope"},
		{`message: hi`, `unknown field "message"`},
	} {
		_, err := build(t, "log", policy.OnHTTPRequest, tt.config)
		wantErr(t, err, tt.want)
	}
}
