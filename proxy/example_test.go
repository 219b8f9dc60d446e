package proxy_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/sluicehq/sluice/proxy"
	"github.com/sluicehq/sluice/proxy/upstream"
)

// A server fronting one backend on an OS-chosen port: Apply builds and
// swaps the endpoints, Addrs tells where they listen, Shutdown drains.
func Example() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s via %s", r.Host, r.Header.Get("Via"))
	}))
	defer backend.Close()

	s := proxy.New(proxy.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	err := s.Apply([]proxy.EndpointConfig{{
		URL:      "http://app.example.com:8080",
		Listen:   "127.0.0.1:0",
		Upstream: upstream.Config{URLs: []string{backend.URL}},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Shutdown(context.Background())

	req, _ := http.NewRequest("GET", "http://"+s.Addrs()["127.0.0.1:0"].String()+"/", nil)
	req.Host = "app.example.com:8080"
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	fmt.Println(res.StatusCode, string(body))
	// Output: 200 hello from app.example.com:8080 via 1.1 sluice
}
