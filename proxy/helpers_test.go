package proxy

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// start applies cfgs on a new Server and returns it; every endpoint listens
// on 127.0.0.1:0 unless it says otherwise.
func start(t testing.TB, opts Options, cfgs ...EndpointConfig) *Server {
	t.Helper()
	if opts.Log == nil {
		opts.Log = quiet
	}
	s := New(opts)
	for i := range cfgs {
		if cfgs[i].Listen == "" && !strings.Contains(cfgs[i].URL, ".internal") {
			cfgs[i].Listen = "127.0.0.1:0"
		}
	}
	if err := s.Apply(cfgs); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s
}

// addr returns the listener address for a listen key.
func addr(t testing.TB, s *Server, key string) string {
	t.Helper()
	a := s.Addrs()[key]
	if a == nil {
		t.Fatalf("no listener %q in %v", key, s.Addrs())
	}
	return a.String()
}

func backend(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	b := httptest.NewServer(h)
	t.Cleanup(b.Close)
	return b
}

func get(t testing.TB, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

// raw sends bytes on a fresh TCP connection and returns everything the
// server wrote until it closed the connection or went quiet for 2s.
func raw(t testing.TB, address, data string) string {
	t.Helper()
	c, err := net.Dial("tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(data))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, _ := io.ReadAll(bufio.NewReader(c))
	return string(b)
}
