package e2e

// The client side of the harness: HTTP/1.1 and HTTP/2 clients that reach
// every endpoint URL through the proxy's listener, and the reply helpers.

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/net/http2"
)

// client returns an HTTP/1.1 keep-alive client that sends every URL to the
// proxy, trusts the test certificates, never follows redirects and never
// asks for compression on its own.
func (e *env) client() *http.Client { return e.clientFrom("") }

// clientFrom is client with connections made from a chosen local loopback
// IP (e.g. "127.0.0.9"), so that conn.client_ip differs per test.
func (e *env) clientFrom(localIP string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, hostport string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(hostport)
			a, err := e.addrFor(host)
			if err != nil {
				return nil, err
			}
			return d.DialContext(ctx, "tcp", a)
		},
		TLSClientConfig:     &tls.Config{RootCAs: e.roots, NextProtos: []string{"http/1.1"}},
		DisableCompression:  true,
		MaxIdleConnsPerHost: 4,
	}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// reply is one answer as the client received it.
type reply struct {
	Proto  string // "HTTP/1.1", "HTTP/2.0"
	Status int
	Header http.Header
	Body   string // decoded when the response had a Content-Encoding
	Raw    []byte // as received
	Err    error  // transport error (e.g. the connection was closed)
	// DecodeErr is set when the body had a Content-Encoding that did not
	// decode; Body is then the raw body.
	DecodeErr error
}

// seen decodes the echo upstream's JSON body.
func (r reply) seen(t testing.TB) *seen {
	t.Helper()
	var s seen
	if err := json.Unmarshal([]byte(r.Body), &s); err != nil || s.Method == "" {
		t.Fatalf("response is not the upstream's echo (status %d): %q", r.Status, r.Body)
	}
	return &s
}

// request is what a test sends.
type request struct {
	Method string
	URL    string
	Header []string // name, value pairs; "Host" sets the Host header
	Body   string
}

// send does one request with c and reads the whole answer.
func send(t testing.TB, c *http.Client, q request) reply {
	t.Helper()
	method := q.Method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if q.Body != "" {
		body = strings.NewReader(q.Body)
	}
	req, err := http.NewRequest(method, q.URL, body)
	if err != nil {
		t.Fatalf("request %s %s: %v", method, q.URL, err)
	}
	for i := 0; i+1 < len(q.Header); i += 2 {
		if strings.EqualFold(q.Header[i], "Host") {
			req.Host = q.Header[i+1]
			continue
		}
		req.Header.Add(q.Header[i], q.Header[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		return reply{Err: err}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return reply{Status: res.StatusCode, Header: res.Header, Err: err}
	}
	r := reply{Proto: res.Proto, Status: res.StatusCode, Header: res.Header, Raw: raw, Body: string(raw)}
	if ce := res.Header.Get("Content-Encoding"); ce != "" {
		// A body that does not decode stays as received (an upstream's
		// own encoding passed through untouched); DecodeErr says so.
		if dec, err := decode(ce, raw); err == nil {
			r.Body = string(dec)
		} else {
			r.DecodeErr = err
		}
	}
	return r
}

// get is send for a GET with header pairs.
func get(t testing.TB, c *http.Client, url string, hdr ...string) reply {
	t.Helper()
	return send(t, c, request{URL: url, Header: hdr})
}

// decode undoes one Content-Encoding.
func decode(coding string, b []byte) ([]byte, error) {
	var r io.Reader
	switch strings.ToLower(strings.TrimSpace(coding)) {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		r = zr
	case "deflate":
		r = flate.NewReader(bytes.NewReader(b))
	case "br":
		r = brotli.NewReader(bytes.NewReader(b))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	default:
		return nil, errors.New("unknown content-encoding " + coding)
	}
	return io.ReadAll(r)
}

// rawExchange writes data on a new TCP connection to addr and returns what
// the server sent until it closed the connection (or 3 s passed).
func rawExchange(t testing.TB, addr, data string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if data != "" {
		if _, err := io.WriteString(c, data); err != nil {
			return "", err
		}
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// clientH2 returns an HTTP/2 client: over TLS (ALPN h2) for https URLs,
// and h2c with prior knowledge for http URLs.
func (e *env) clientH2() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	dial := func(ctx context.Context, hostport string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(hostport)
		a, err := e.addrFor(host)
		if err != nil {
			return nil, err
		}
		return d.DialContext(ctx, "tcp", a)
	}
	h2 := &http2.Transport{
		DisableCompression: true,
		TLSClientConfig:    &tls.Config{RootCAs: e.roots},
		DialTLSContext: func(ctx context.Context, _, hostport string, cfg *tls.Config) (net.Conn, error) {
			c, err := dial(ctx, hostport)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(c, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, err
			}
			return tc, nil
		},
	}
	h2c := &http2.Transport{
		AllowHTTP:          true,
		DisableCompression: true,
		DialTLSContext: func(ctx context.Context, _, hostport string, _ *tls.Config) (net.Conn, error) {
			return dial(ctx, hostport)
		},
	}
	e.t.Cleanup(h2.CloseIdleConnections)
	e.t.Cleanup(h2c.CloseIdleConnections)
	return &http.Client{
		Transport:     schemeRouter{"https": h2, "http": h2c},
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// schemeRouter sends each request to the transport for its URL scheme.
type schemeRouter map[string]http.RoundTripper

func (m schemeRouter) RoundTrip(r *http.Request) (*http.Response, error) {
	if t := m[r.URL.Scheme]; t != nil {
		return t.RoundTrip(r)
	}
	return nil, errors.New("no transport for scheme " + r.URL.Scheme)
}
