package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicehq/sluice/exchange"
)

// connInfo is what the proxy keeps per client connection.
type connInfo struct {
	conn   exchange.Conn
	l      *listener
	tls    bool
	sni    string // normalised SNI of a terminated TLS connection
	peerIP string // PeerAddr's IP as text, computed once for X-Forwarded-For
	gauge  prometheus.Gauge
	bytes  exchange.ByteCounts // conn.bytes_in / conn.bytes_out
}

// clientAddrer is implemented by connections that know the real client
// address better than RemoteAddr (tunnel streams).
type clientAddrer interface {
	ClientAddr() netip.AddrPort
}

func newConnInfo(c net.Conn, l *listener) *connInfo {
	ci := &connInfo{l: l}
	ci.conn.Start = time.Now()
	ci.conn.PeerAddr = addrPort(c.RemoteAddr())
	ci.conn.ServerAddr = addrPort(c.LocalAddr())
	ci.conn.ClientAddr = ci.conn.PeerAddr
	if ca, ok := c.(clientAddrer); ok {
		ci.conn.ClientAddr = ca.ClientAddr()
		ci.conn.PeerAddr = ci.conn.ClientAddr
	}
	ci.peerIP = ci.conn.PeerAddr.Addr().String()
	if a := ci.conn.ClientAddr.Addr(); a.IsValid() {
		ci.conn.ClientIP = ci.peerIP
		if a != ci.conn.PeerAddr.Addr() || a.Is4In6() {
			ci.conn.ClientIP = a.Unmap().String()
		}
	}
	ci.conn.ID = "conn_" + newID()
	ci.conn.Bytes = &ci.bytes
	return ci
}

func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case nil:
		return netip.AddrPort{}
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap
	}
	return netip.AddrPort{}
}

type connKey struct{}

func withConn(ctx context.Context, ci *connInfo) context.Context {
	return context.WithValue(ctx, connKey{}, ci)
}

// infoOf finds the connInfo of a connection net/http hands back.
func infoOf(c net.Conn) *connInfo {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	switch c := c.(type) {
	case *sconn:
		return c.ci
	case tlsConn:
		return c.ci
	}
	return nil
}

// sconn carries the connInfo through net/http (and under crypto/tls), and
// runs the h1 guard over what HTTP/1.x clients send.
type sconn struct {
	net.Conn
	ci   *connInfo
	g    *h1guard // nil: not watched (TLS records, h2)
	gerr error    // sticky: net/http may swallow one failed read (Peek)
}

func (c *sconn) Read(p []byte) (int, error) {
	if c.gerr != nil {
		return 0, c.gerr
	}
	n, err := c.Conn.Read(p)
	if c.g != nil && n > 0 {
		if gerr := c.g.scan(p[:n]); gerr != nil {
			c.gerr = gerr
			c.ci.l.s.log.Info("request refused", "client", c.ci.conn.ClientAddr, "err", gerr)
			return 0, gerr
		}
	}
	return n, err
}

// tlsConn is an sconn over a *tls.Conn: ConnectionState lets net/http fill
// Request.TLS although it does not see the *tls.Conn itself.
type tlsConn struct {
	*sconn
	tc *tls.Conn
}

func (c tlsConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// CloseWrite keeps half-close working for upgraded connections.
func (c *sconn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// peekConn replays bytes peeked while classifying a connection. With n
// it is the connection's innermost layer and counts the bytes that cross
// it (br then reads through a countReader).
type peekConn struct {
	net.Conn
	br *bufio.Reader
	n  *exchange.ByteCounts
}

func (c *peekConn) Read(p []byte) (int, error) {
	if c.br.Buffered() > 0 {
		return c.br.Read(p)
	}
	n, err := c.Conn.Read(p)
	if c.n != nil {
		c.n.In.Add(int64(n))
	}
	return n, err
}

func (c *peekConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.n != nil {
		c.n.Out.Add(int64(n))
	}
	return n, err
}

// countReader counts what it reads into n.In.
type countReader struct {
	r io.Reader
	n *exchange.ByteCounts
}

func (c countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.In.Add(int64(n))
	return n, err
}

func (c *peekConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// chanListener feeds classified connections to a net/http server.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

func (l *chanListener) deliver(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}
