package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/proxy/upstream"
)

func TestBasicProxy(t *testing.T) {
	b := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "1")
		w.Write([]byte("hello " + r.URL.RequestURI() + " host=" + r.Host +
			" xff=" + r.Header.Get("X-Forwarded-For") + " id=" + r.Header.Get("X-Request-Id")))
	})
	s := start(t, Options{}, EndpointConfig{URL: "http://:8080", Upstream: upstream.Config{URLs: []string{b.URL}}})
	a := addr(t, s, "127.0.0.1:0")
	for i := 0; i < 3; i++ {
		res, body := get(t, "http://"+a+"/p/a?q=1", "Host", "example.com")
		if res.StatusCode != 200 || !strings.HasPrefix(body, "hello /p/a?q=1 host=example.com xff=127.0.0.1 id=") {
			t.Fatalf("got %d %q", res.StatusCode, body)
		}
		id := res.Header.Get("X-Request-Id")
		if id == "" || !strings.HasSuffix(body, id) {
			t.Fatalf("request id %q not passed upstream: %q", id, body)
		}
		if res.Header.Get("Via") != "1.1 sluice" || res.Header.Get("X-Backend") != "1" {
			t.Fatalf("headers %v", res.Header)
		}
	}
}
