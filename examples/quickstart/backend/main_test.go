package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The quickstart README tells users to look at the echoed headers to see
// the policy at work, so the echo must carry them and the path faithfully.
func TestEchoReportsRequest(t *testing.T) {
	srv := httptest.NewServer(handler("demo"))
	defer srv.Close()

	req, err := http.NewRequest(http.MethodPost, srv.URL+"/a%2Fb?x=1", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Add("X-Demo", "one")
	req.Header.Add("X-Demo", "two")
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	var e echo
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if e.Service != "demo" || e.Method != "POST" || e.Path != "/a%2Fb" || e.Query != "x=1" {
		t.Fatalf("echo = %+v", e)
	}
	if e.BodyBytes != 5 {
		t.Fatalf("body_bytes = %d, want 5", e.BodyBytes)
	}
	if got := e.Headers["X-Demo"]; got != "one, two" {
		t.Fatalf("X-Demo = %q", got)
	}
}
