package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/proxy/l4"
	"github.com/sluicehq/sluice/proxy/upstream"
)

// listener is one bound socket. Its accept loop classifies each connection
// (plaintext HTTP, TLS to terminate, TLS to pass through, raw TCP), runs the
// endpoint's OnConnect, and hands HTTP connections to a net/http server
// through a channel-fed listener.
//
// There are two servers: one with h2c prior knowledge enabled, fed only the
// plaintext connections whose first byte is 'P' (the h2 preface "PRI * ..."
// or POST/PUT/PATCH), and one without, for all others and for TLS. net/http
// waits for 24 bytes to rule out the h2 preface, so a short malformed
// request would otherwise get no answer until the header timeout.
type listener struct {
	s   *Server
	key string // listen key; "" = ServeListener (all endpoints)
	ln  net.Listener
	hs  *http.Server // h1, h2 over TLS
	cl  *chanListener
	hsc *http.Server // h1 and h2c prior knowledge
	clc *chanListener

	wg       sync.WaitGroup // connections still in classification, piping or served by the engine
	shutOnce sync.Once

	eng bool      // HTTP/1.x is served by the sluice engine (h1server.go)
	h1  h1tracker // the engine's connections
}

func (s *Server) newListener(key string, ln net.Listener) *listener {
	l := &listener{s: s, key: key, ln: ln, eng: s.opts.HTTP1Engine != EngineNetHTTP}
	l.hs, l.cl = l.newHTTPServer(false)
	l.hsc, l.clc = l.newHTTPServer(true)
	return l
}

func (l *listener) newHTTPServer(h2c bool) (*http.Server, *chanListener) {
	s := l.s
	lim := s.limits
	hs := &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ErrorLog:          newStdLogger(s.log),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return withConn(ctx, infoOf(c))
		},
		ConnState: l.connState,
	}
	if lim.WriteTimeout > 0 {
		hs.WriteTimeout = lim.WriteTimeout
	}
	hs.Protocols = new(http.Protocols)
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetHTTP2(true)
	hs.Protocols.SetUnencryptedHTTP2(h2c)
	hs.HTTP2 = &http.HTTP2Config{}
	return hs, &chanListener{addr: l.ln.Addr(), ch: make(chan net.Conn), done: make(chan struct{})}
}

// serve runs the accept loop until the listener is closed.
func (l *listener) serve() {
	go l.hs.Serve(l.cl)
	go l.hsc.Serve(l.clc)
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// EMFILE and friends: back off instead of spinning.
				if delay == 0 {
					delay = 5 * time.Millisecond
				} else if delay < time.Second {
					delay *= 2
				}
				time.Sleep(delay)
				continue
			}
			l.cl.Close()
			l.clc.Close()
			return
		}
		delay = 0
		l.wg.Add(1)
		go l.handle(c)
	}
}

// shutdown stops accepting and drains; at ctx's end it closes the rest.
func (l *listener) shutdown(ctx context.Context) {
	l.shutOnce.Do(func() {
		l.ln.Close()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.h1.shutdown(ctx)
		}()
		for _, hs := range []*http.Server{l.hs, l.hsc} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := hs.Shutdown(ctx); err != nil {
					hs.Close()
				}
			}()
		}
		wg.Wait()
		waitCtx(ctx, &l.wg)
	})
}

func waitCtx(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (l *listener) connState(c net.Conn, st http.ConnState) {
	ci := infoOf(c)
	if ci == nil || ci.gauge == nil {
		return
	}
	switch st {
	case http.StateNew:
		ci.gauge.Inc()
	case http.StateHijacked, http.StateClosed:
		ci.gauge.Dec()
	}
}

// routes returns this listener's routes in table t.
func (l *listener) routes(t *table) *routes {
	if l.key == "" {
		return t.merged
	}
	return t.binds[l.key]
}

// handle classifies one accepted connection.
func (l *listener) handle(c net.Conn) {
	defer l.wg.Done()
	// An HTTP/1.x connection for the engine is served once the table is
	// released (deferred calls run last-in first-out): it must not pin the
	// table for the connection's whole life.
	var serve func()
	defer func() {
		if serve != nil {
			serve()
		}
	}()
	s := l.s
	// The table stays pinned while the connection is classified and, for
	// byte pipes, as long as it lasts: its endpoints' pools and certificate
	// stores are closed only once nothing uses them.
	v := s.tbl.Acquire()
	defer v.Release()
	var r *routes
	if v != nil {
		r = l.routes(v.Val)
	}
	if r == nil {
		c.Close()
		return
	}
	ci := newConnInfo(c, l)
	lim := s.limits
	switch {
	case r.tcp != nil:
		l.pipe(ci, c, r.tcp)
		return
	case r.hasTLS():
		// TLS records start with 0x16 (handshake); anything else is
		// plaintext, served on a mixed port and refused on a TLS-only one.
		bc, first := l.peek(c, ci)
		if bc == nil {
			return
		}
		c = bc
		if first != 0x16 {
			if r.hasPlain() {
				serve = l.serveHTTP(ci, c, first, r.plain.first())
				return
			}
			c.SetWriteDeadline(time.Now().Add(lim.ReadHeaderTimeout))
			io.WriteString(c, plainOnTLS)
			c.Close()
			return
		}
		hello, replay, err := l4.PeekClientHello(c, lim.ReadHeaderTimeout)
		if err != nil {
			s.log.Debug("tls: bad client hello", "client", ci.conn.PeerAddr, "err", err)
			c.Close()
			return
		}
		sni := normHost(hello.ServerName)
		ci.conn.SNI = hello.ServerName
		e := r.matchTLS(sni)
		if e != nil && e.kind == kindTLS {
			l.pipe(ci, replay, e)
			return
		}
		if e == nil {
			s.log.Debug("tls: no endpoint for server name", "sni", hello.ServerName, "client", ci.conn.PeerAddr)
			replay.Close()
			return
		}
		ci.conn.Endpoint = &e.ep
		ci.tls = true
		ci.sni = sni
		if !l.connect(ci, e) {
			replay.Close()
			return
		}
		tc := tls.Server(&sconn{Conn: replay, ci: ci}, e.tlsConf)
		tc.SetDeadline(time.Now().Add(lim.ReadHeaderTimeout))
		if err := tc.Handshake(); err != nil {
			s.log.Debug("tls handshake failed", "sni", hello.ServerName, "client", ci.conn.PeerAddr, "err", err)
			tc.Close()
			return
		}
		tc.SetDeadline(time.Time{})
		st := tc.ConnectionState()
		ci.conn.TLS = &st
		if st.NegotiatedProtocol == "h2" {
			l.cl.deliver(tc)
			return
		}
		if l.eng {
			serve = func() { l.serveH1(ci, tc, 0) }
			return
		}
		// HTTP/1.x over TLS goes through the h1 guard like plaintext; net/http
		// then sees no *tls.Conn (r.TLS comes from tlsConn.ConnectionState).
		l.cl.deliver(tlsConn{&sconn{Conn: tc, ci: ci, g: newH1Guard()}, tc})
	default:
		bc, first := l.peek(c, ci)
		if bc == nil {
			return
		}
		serve = l.serveHTTP(ci, bc, first, r.plain.first())
	}
}

// peek reads the first byte of a connection (within the header timeout);
// nil means the connection was closed.
func (l *listener) peek(c net.Conn, ci *connInfo) (net.Conn, byte) {
	bc := &peekConn{Conn: c, br: bufio.NewReaderSize(countReader{c, &ci.bytes}, 4096), n: &ci.bytes}
	c.SetReadDeadline(time.Now().Add(l.s.limits.ReadHeaderTimeout))
	b, err := bc.br.Peek(1)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return nil, 0
	}
	return bc, b[0]
}

const plainOnTLS = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Connection: close\r\nContent-Length: 55\r\n\r\n400 Bad Request: plain HTTP request sent to a TLS port\n"

// serveHTTP runs OnConnect for a plaintext connection and hands it to
// net/http, or returns the call that serves it with the sluice engine.
// Before a request arrives the Host is unknown, so OnConnect runs with the
// port's catch-all endpoint (or its only/first one).
func (l *listener) serveHTTP(ci *connInfo, c net.Conn, first byte, e *endpoint) func() {
	if e == nil {
		c.Close()
		return nil
	}
	ci.conn.Endpoint = &e.ep
	if !l.connect(ci, e) {
		c.Close()
		return nil
	}
	if l.eng {
		return func() { l.serveH1(ci, c, first) }
	}
	cl := l.cl
	if first == 'P' {
		cl = l.clc
	}
	cl.deliver(&sconn{Conn: c, ci: ci, g: newH1Guard()})
	return nil
}

// connect runs the endpoint's OnConnect; false means close the connection.
func (l *listener) connect(ci *connInfo, e *endpoint) bool {
	ci.gauge = e.metrics.activeConns()
	if e.hooks == nil {
		return true
	}
	if err := safeOnConnect(e.hooks, &ci.conn); err != nil {
		if !errors.Is(err, exchange.ErrCloseConnection) {
			l.s.log.Info("connection refused by policy", "endpoint", e.ep.ID, "client", ci.conn.ClientAddr, "err", err)
		}
		return false
	}
	return true
}

func safeOnConnect(h exchange.Hooks, c *exchange.Conn) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("policy panicked in on_tcp_connect")
		}
	}()
	return h.OnConnect(c)
}

// pipe forwards a tcp:// or tls:// connection to the endpoint's upstream.
func (l *listener) pipe(ci *connInfo, c net.Conn, e *endpoint) {
	s := l.s
	ci.conn.Endpoint = &e.ep
	if !l.connect(ci, e) {
		c.Close()
		return
	}
	if g := ci.gauge; g != nil {
		g.Inc()
		defer g.Dec()
	}
	up, t, err := dialPipe(s.ctx, e)
	if err != nil {
		s.log.Warn("upstream connect failed", "endpoint", e.ep.ID, "client", ci.conn.ClientAddr, "err", err)
		c.Close()
		return
	}
	s.trackHijacked(c, true)
	s.trackHijacked(up, true)
	defer s.trackHijacked(c, false)
	defer s.trackHijacked(up, false)
	in, out, err := l4.Pipe(s.ctx, c, up, e.limits.IdleTimeout)
	c.Close()
	up.Close()
	e.pool.End(t, nil)
	if e.metrics != nil {
		e.metrics.reqBytes.Add(float64(in))
		e.metrics.resBytes.Add(float64(out))
	}
	if err != nil {
		s.log.Debug("pipe ended", "endpoint", e.ep.ID, "err", err)
	}
}

// dialPipe connects to a healthy target, trying the next one on failure.
func dialPipe(ctx context.Context, e *endpoint) (net.Conn, *upstream.Target, error) {
	if e.pool == nil {
		return nil, nil, errors.New("no upstream configured")
	}
	var tried []*upstream.Target
	for {
		t, err := e.pool.Pick(tried)
		if err != nil {
			return nil, nil, err
		}
		e.pool.Begin(t)
		c, err := e.dial(ctx, t.Network, t.Addr)
		if err == nil {
			return c, t, nil
		}
		e.pool.End(t, err)
		tried = append(tried, t)
		if len(tried) >= len(e.pool.Targets()) {
			return nil, nil, err
		}
	}
}
