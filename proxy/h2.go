package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/proxy/upstream"
	"golang.org/x/net/http2"
)

// h2Transports reach upstreams over HTTP/2: h2c:// targets, and gRPC
// requests (which need h2 end to end) to http://, unix: and https://
// targets. http:// and unix: targets are then spoken to in h2c (prior
// knowledge), https:// ones in h2 negotiated by ALPN. One x/net/http2
// transport per target keeps its multiplexed connections.
type h2Transports struct {
	e   *endpoint
	mu  sync.Mutex
	h2c map[*upstream.Target]*http2.Transport
	tls map[*upstream.Target]*http2.Transport
}

func newH2Transports(e *endpoint) *h2Transports {
	return &h2Transports{e: e, h2c: map[*upstream.Target]*http2.Transport{}, tls: map[*upstream.Target]*http2.Transport{}}
}

func (h *h2Transports) get(t *upstream.Target, useTLS bool) *http2.Transport {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.h2c
	if useTLS {
		m = h.tls
	}
	if tr := m[t]; tr != nil {
		return tr
	}
	lim := &h.e.limits
	tr := &http2.Transport{
		ReadIdleTimeout: 30 * time.Second,
		PingTimeout:     15 * time.Second,
		IdleConnTimeout: lim.UpstreamIdleTimeout,
		// The request goes up as the client sent it: no Accept-Encoding
		// of the transport's own, and no body decoded on the way back
		// (which also dropped Content-Encoding and Content-Length).
		DisableCompression: true,
	}
	if useTLS {
		conf := h.e.upTLS.Clone()
		conf.ServerName = t.ServerName
		conf.NextProtos = []string{"h2"}
		tr.TLSClientConfig = conf
		tr.DialTLSContext = func(ctx context.Context, _, _ string, cfg *tls.Config) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, lim.DialTimeout)
			defer cancel()
			c, err := h.e.dial(ctx, t.Network, t.Addr)
			if err != nil {
				return nil, &dialError{err}
			}
			tc := tls.Client(c, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, &dialError{err}
			}
			if tc.ConnectionState().NegotiatedProtocol != "h2" {
				tc.Close()
				return nil, &dialError{errors.New("upstream does not speak h2 (needed for gRPC)")}
			}
			return tc, nil
		}
	} else {
		tr.AllowHTTP = true
		tr.DialTLSContext = func(ctx context.Context, _, _ string, _ *tls.Config) (net.Conn, error) {
			c, err := h.e.dial(ctx, t.Network, t.Addr)
			if err != nil {
				return nil, &dialError{err}
			}
			return c, nil
		}
	}
	m[t] = tr
	return tr
}

func (h *h2Transports) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, tr := range h.h2c {
		tr.CloseIdleConnections()
	}
	for _, tr := range h.tls {
		tr.CloseIdleConnections()
	}
}

// roundTrip sends the exchange's request over HTTP/2.
func (h *h2Transports) roundTrip(xs *xstate, t *upstream.Target, useTLS bool) (*exchange.Response, error) {
	x := &xs.x
	req := x.Req
	tr := h.get(t, useTLS)
	path := xs.upPath()
	u := &url.URL{Scheme: "http", Host: t.Addr, Opaque: path, RawQuery: req.RawQuery}
	if useTLS {
		u.Scheme = "https"
	}
	if t.Network == "unix" {
		u.Host = "localhost"
	}
	if strings.HasPrefix(path, "//") {
		// Opaque "//x" would read as an authority; send the path instead.
		u.Opaque = ""
		u.Path, _ = url.PathUnescape(path)
		u.RawPath = path
	}
	hdr := make(http.Header, len(req.Header)+6)
	// The fields the client's Connection named went before the policies
	// ran (serveExchange).
	for k, vv := range req.Header {
		if skipRequestHeader(k) {
			continue
		}
		hdr[k] = vv
	}
	if hasToken(req.Header, "Te", "trailers") {
		hdr["Te"] = []string{"trailers"}
	}
	xs.f.header(hdr, req.Header)
	if _, ok := hdr["User-Agent"]; !ok {
		hdr["User-Agent"] = nil // no Go-http-client/2.0 of the transport's own
	}
	host := req.Host
	if host == "" {
		host = t.Addr
	}
	if !validRequestLine(req.Method, path, host) {
		return nil, errBadRequestLine
	}

	ctx, cancel := context.WithCancel(x.Ctx)
	hreq := (&http.Request{
		Method:     req.Method,
		URL:        u,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		Header:     hdr,
		Host:       host,
		Trailer:    req.Trailer,
	}).WithContext(ctx)
	switch {
	case xs.small != nil:
		hreq.Body = io.NopCloser(bytes.NewReader(xs.small))
		hreq.ContentLength = int64(len(xs.small))
	case req.Body != nil && req.Body != http.NoBody:
		hreq.Body = req.Body
		hreq.ContentLength = req.ContentLength
	}
	var timedOut atomic.Bool
	timer := time.AfterFunc(h.e.limits.ResponseHeaderTimeout, func() { timedOut.Store(true); cancel() })
	resp, err := tr.RoundTrip(hreq)
	if !timer.Stop() && timedOut.Load() {
		if err == nil {
			resp.Body.Close()
		}
		cancel()
		return nil, &exchange.Error{Status: http.StatusGatewayTimeout, Msg: "upstream response timed out", Err: context.DeadlineExceeded}
	}
	if err != nil {
		cancel()
		return nil, err
	}
	res := &xs.res
	*res = exchange.Response{
		StatusCode:    resp.StatusCode,
		Header:        resp.Header,
		ContentLength: resp.ContentLength,
		Trailer:       resp.Trailer,
		Body:          &h2Body{resp: resp, cancel: cancel},
	}
	return res, nil
}

// h2Body hands out an HTTP/2 response body and its trailers, which are
// known only at its end.
type h2Body struct {
	resp   *http.Response
	cancel context.CancelFunc
}

func (b *h2Body) Read(p []byte) (int, error) {
	n, err := b.resp.Body.Read(p)
	if err != nil && err != io.EOF {
		err = &upstreamBodyError{err}
	}
	return n, err
}

func (b *h2Body) Close() error {
	err := b.resp.Body.Close()
	b.cancel()
	return err
}

func (b *h2Body) trailer() http.Header { return b.resp.Trailer }
