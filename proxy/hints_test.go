package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/proxy/certs"
)

// An upstream's 103 Early Hints reach HTTP/1.1 and h2 clients at once,
// without its hop-by-hop fields and without leaking into the final
// answer; HTTP/1.0 clients get none (RFC 9110 §15.2).
func TestEarlyHints(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Link", "</style.css>; rel=preload; as=style")
		h.Set("Connection", "X-Hop")
		h.Set("X-Hop", "1")
		w.WriteHeader(http.StatusEarlyHints)
		h.Del("Link")
		h.Del("Connection")
		h.Del("X-Hop")
		io.WriteString(w, "final")
	})
	pair, pool := selfSigned(t, "app.test")
	s := start(t, Options{},
		EndpointConfig{URL: "https://app.test:443", TLS: []certs.Pair{pair}, Upstream: up(be.URL)},
		EndpointConfig{URL: "http://:80", Listen: "127.0.0.2:0", Upstream: up(be.URL)},
	)
	tlsAddr, plain := addr(t, s, "127.0.0.1:0"), addr(t, s, "127.0.0.2:0")

	for _, tc := range []struct {
		name, url string
		tr        *http.Transport
		proto     string
	}{
		{"h1", "http://" + plain + "/", &http.Transport{}, "HTTP/1.1"},
		{"h2", "https://" + tlsAddr + "/", &http.Transport{ForceAttemptHTTP2: true,
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "app.test"}}, "HTTP/2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.tr.CloseIdleConnections()
			var hints []textproto.MIMEHeader
			var codes []int
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				codes = append(codes, code)
				hints = append(hints, h)
				return nil
			}}
			req, _ := http.NewRequest("GET", tc.url, nil)
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
			res, err := (&http.Client{Transport: tc.tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || string(b) != "final" || res.Proto != tc.proto {
				t.Fatalf("final answer %s %d %q", res.Proto, res.StatusCode, b)
			}
			if len(codes) != 1 || codes[0] != 103 || hints[0].Get("Link") != "</style.css>; rel=preload; as=style" {
				t.Fatalf("interim answers %v %v, want one 103 with the Link", codes, hints)
			}
			if hints[0].Get("X-Hop") != "" || hints[0].Get("Connection") != "" {
				t.Errorf("hop-by-hop fields in the 103: %v", hints[0])
			}
			if res.Header.Get("Link") != "" {
				t.Errorf("the hints leaked into the final answer: %v", res.Header)
			}
		})
	}

	t.Run("http1.0", func(t *testing.T) {
		c, err := net.Dial("tcp", plain)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET / HTTP/1.0\r\nHost: a\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 || string(b) != "final" || strings.Contains(res.Header.Get("Link"), "style") {
			t.Fatalf("HTTP/1.0 client: %d %q %v, want the final answer alone", res.StatusCode, b, res.Header)
		}
	})
}
