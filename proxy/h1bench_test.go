package proxy

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/proxy/upstream"
)

// BenchmarkH1Engines is BenchmarkProxyGet1K for each HTTP/1.x engine in
// one run, so that the two compare on the same (shared) machine.
func BenchmarkH1Engines(b *testing.B) {
	for _, eng := range []string{EngineNetHTTP, EngineSluice} {
		b.Run(strings.ReplaceAll(eng, "/", ""), func(b *testing.B) {
			body := strings.Repeat("x", 1024)
			be := backend(b, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				io.WriteString(w, body)
			})
			s := start(b, Options{HTTP1Engine: eng},
				EndpointConfig{URL: "http://:80", Upstream: upstream.Config{URLs: []string{be.URL}}})
			a := addr(b, s, "127.0.0.1:0")
			tr := &http.Transport{MaxIdleConnsPerHost: 64, DialContext: (&net.Dialer{}).DialContext}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			url := "http://" + a + "/bench"
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 4096)
				for pb.Next() {
					res, err := c.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					for {
						if _, err := res.Body.Read(buf); err != nil {
							break
						}
					}
					res.Body.Close()
					if res.StatusCode != 200 {
						b.Errorf("status %d", res.StatusCode)
						return
					}
				}
			})
		})
	}
}
