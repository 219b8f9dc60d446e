package actions

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/policy"
)

// miniProxy is the smallest proxy that drives exchange.Hooks the way the
// real one does: it lets these tests check what actions do to real HTTP
// traffic (headers on the wire, status codes, closed connections) without
// depending on the proxy package.
func miniProxy(t *testing.T, h exchange.Hooks, backend string) *httptest.Server {
	t.Helper()
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := netip.MustParseAddrPort(r.RemoteAddr)
		if fake := r.Header.Get("X-Test-Client"); fake != "" {
			client = netip.MustParseAddrPort(fake) // lets one test act as many clients
			r.Header.Del("X-Test-Client")
		}
		conn := &exchange.Conn{ID: "c", ClientAddr: client, PeerAddr: client, Start: time.Now(),
			Endpoint: &exchange.Endpoint{ID: "ep", URL: "http://" + r.Host, Scheme: "http"}}
		x := &exchange.Exchange{Ctx: r.Context(), ID: "r", Start: time.Now(), Conn: conn, Endpoint: conn.Endpoint,
			Req: &exchange.Request{Method: r.Method, Scheme: "http", Host: r.Host, Path: r.URL.EscapedPath(),
				RawQuery: r.URL.RawQuery, Proto: r.Proto, Header: r.Header.Clone(), ContentLength: r.ContentLength, Body: r.Body}}
		defer h.Done(x)
		closeConn := func() {
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.Close()
			}
		}
		if err := h.OnConnect(conn); err != nil {
			closeConn()
			return
		}
		if err := h.OnRequest(x); errors.Is(err, exchange.ErrCloseConnection) {
			closeConn()
			return
		} else if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if x.Res == nil {
			out, _ := http.NewRequest(x.Req.Method, backend+x.Req.URI(), x.Req.Body)
			out.Header = x.Req.Header
			out.Host = x.Req.Host
			res, err := (&http.Transport{DisableCompression: true}).RoundTrip(out)
			if err != nil {
				http.Error(w, err.Error(), 502)
				return
			}
			x.Res = &exchange.Response{StatusCode: res.StatusCode, Header: res.Header, ContentLength: res.ContentLength, Body: res.Body}
		}
		if err := h.OnResponse(x); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if x.Res.Body != nil {
			defer x.Res.Body.Close()
		}
		for k, v := range x.Res.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(x.Res.StatusCode)
		if x.Res.Body != nil {
			io.Copy(w, x.Res.Body)
		}
	}))
}

const e2ePolicy = `
on_http_request:
  - name: bye
    expressions: [req.url.path == '/dc']
    actions:
      - type: close-connection
  - name: limit
    actions:
      - type: rate-limit
        config:
          name: e2e
          algorithm: sliding_window
          capacity: 3
          rate: 60s
          bucket_key: [conn.client_ip]
  - name: rewrite
    expressions: [req.url.path.startsWith('/api/')]
    actions:
      - type: remove-headers
        config: {headers: [x-secret]}
      - type: add-headers
        config: {headers: {x-client-ip: "${conn.client_ip}"}}
      - type: url-rewrite
        config: {from: "/api/(v[0-9]+)/", to: "/$1/"}
on_http_response:
  - actions:
      - type: remove-headers
        config: {headers: [server]}
      - type: compress-response
`

func TestEndToEndThroughHTTP(t *testing.T) {
	var mu sync.Mutex
	var seen []*http.Request
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r)
		mu.Unlock()
		w.Header().Set("Server", "backend/1.0")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strings.Repeat("payload ", 500))
	}))
	defer backend.Close()
	h, err := policy.NewInlineHandle("e2e.yaml", []byte(e2ePolicy), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	px := miniProxy(t, h, backend.URL)
	defer px.Close()

	get := func(path, client string, hdr ...string) (*http.Response, error) {
		req, _ := http.NewRequest("GET", px.URL+path, nil)
		req.Header.Set("X-Test-Client", client)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		return (&http.Transport{DisableCompression: true}).RoundTrip(req)
	}

	res, err := get("/api/v1/users?x=1", "198.51.100.1:1000", "X-Secret", "s3cret", "Accept-Encoding", "gzip")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(decoder(t, "gzip", res.Body))
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || len(b) != 4000 {
		t.Fatalf("status %d, %d bytes, %v", res.StatusCode, len(b), err)
	}
	if res.Header.Get("Server") != "" || res.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("response headers: %v", res.Header)
	}
	mu.Lock()
	up := seen[len(seen)-1]
	mu.Unlock()
	if up.URL.RequestURI() != "/v1/users?x=1" || up.Header.Get("X-Secret") != "" || up.Header.Get("X-Client-Ip") != "198.51.100.1" {
		t.Errorf("upstream saw %s with %v", up.URL.RequestURI(), up.Header)
	}

	// Two more fit the capacity of 3, the fourth is refused on the wire.
	for i := 0; i < 2; i++ {
		res, err := get("/", "198.51.100.1:1000")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	res, err = get("/", "198.51.100.1:1000")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 429 || res.Header.Get("Retry-After") == "" {
		t.Errorf("4th request: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	// Another client is unaffected.
	res, err = get("/", "198.51.100.2:1000")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("other client: %d", res.StatusCode)
	}

	// close-connection: the client sees the connection end, no response.
	_, err = get("/dc", "198.51.100.3:1000")
	var ne net.Error
	if err == nil || (!errors.Is(err, io.EOF) && !errors.As(err, &ne) && !strings.Contains(err.Error(), "EOF")) {
		t.Errorf("close-connection: err = %v, want the connection closed", err)
	}
}
