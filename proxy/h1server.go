package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// HTTP/1.x engines for Options.HTTP1Engine.
const (
	// EngineSluice is sluice's own HTTP/1.x server (the default).
	EngineSluice = "sluice"
	// EngineNetHTTP serves HTTP/1.x with net/http, as before.
	EngineNetHTTP = "net/http"
)

// h1conn is one client connection served by the sluice HTTP/1.x engine:
// one goroutine, no background reader, requests answered in order. Its
// buffers, header map, request and response writer are reused across the
// connection's requests and, through h1Pool, across connections.
type h1conn struct {
	l      *listener
	ci     *connInfo
	nc     net.Conn
	br     *bufio.Reader // reads src
	bw     *bufio.Writer
	src    h1src
	head   []byte // the current request head, copied out of br
	h      h1head
	hdr    http.Header
	url    url.URL
	req    *http.Request
	w      h1writer
	remote string

	wmu        sync.Mutex   // orders "100 Continue" against the response head
	state      atomic.Int32 // h1Active, h1Idle, h1Closing (see h1tracker)
	closeAfter bool         // no further request on this connection
	hijacked   bool

	// dmu orders the body reader's deadline (body_read_timeout) against
	// the engine's: once bodyHalted, only the engine sets read deadlines.
	dmu        sync.Mutex
	bodyHalted bool

	// idleDL is the idle timeout's read deadline, re-armed lazily; every
	// other read deadline goes through setReadDeadline, which forgets it.
	idleDL lazyDeadline
}

// setReadDeadline sets a read deadline other than the idle one.
func (c *h1conn) setReadDeadline(t time.Time) { c.idleDL.set(c.nc, t) }

// armBodyRead sets the body read timeout before a read of the request
// body from the socket, unless the engine took the deadline over.
func (c *h1conn) armBodyRead() {
	d := c.l.s.limits.BodyReadTimeout
	if d <= 0 {
		return
	}
	c.dmu.Lock()
	if !c.bodyHalted {
		c.setReadDeadline(time.Now().Add(d))
	}
	c.dmu.Unlock()
}

// haltBody sets the read deadline to t for good: a body reader blocked or
// about to block sees it, and no longer arms its own.
func (c *h1conn) haltBody(t time.Time) {
	c.dmu.Lock()
	c.bodyHalted = true
	c.setReadDeadline(t)
	c.dmu.Unlock()
}

const (
	h1Active int32 = iota
	h1Idle
	h1Closing
)

var h1Pool = sync.Pool{New: func() any {
	c := &h1conn{hdr: http.Header{}}
	c.w.c, c.w.hdr = c, http.Header{}
	return c
}}

var chunkedTE = []string{"chunked"}

// serveH1 serves an HTTP/1.x connection (plaintext or TLS-terminated)
// until it closes, is hijacked or hands over to h2c. first is the first
// byte the client sent, 0 if unknown.
func (l *listener) serveH1(ci *connInfo, nc net.Conn, first byte) {
	s := l.s
	c := h1Pool.Get().(*h1conn)
	if c.br == nil {
		c.br = bufio.NewReaderSize(nil, 4096)
	}
	if c.bw == nil {
		c.bw = bufio.NewWriterSize(nil, 4096)
	}
	c.l, c.ci, c.nc = l, ci, nc
	c.idleDL.reset() // a pooled h1conn's last socket is not this one
	c.src = h1src{nc: nc}
	c.br.Reset(&c.src)
	c.bw.Reset(nc)
	c.closeAfter, c.hijacked = false, false
	c.state.Store(h1Active)
	c.remote = ""
	if ra := nc.RemoteAddr(); ra != nil {
		c.remote = ra.String()
	}
	c.req = new(http.Request).WithContext(withConn(s.ctx, ci))
	if !l.h1.add(c) {
		nc.Close()
		c.release()
		return
	}
	if g := ci.gauge; g != nil {
		g.Inc()
	}

	handedOff := false
	if first == 'P' {
		c.setReadDeadline(time.Now().Add(s.limits.ReadHeaderTimeout))
		if c.isH2Preface() {
			// h2c with prior knowledge: x/net/http2 via net/http takes the
			// connection, replaying what was read.
			handedOff = true
			br := c.br
			c.br = nil
			c.setReadDeadline(time.Time{})
			l.h1.remove(c)
			if g := ci.gauge; g != nil {
				g.Dec()
			}
			l.clc.deliver(&sconn{Conn: &peekConn{Conn: nc, br: br}, ci: ci})
			c.release()
			return
		}
	}
	var rc syscall.RawConn
	noRaw := noRawMode
	for !handedOff {
		if rc == nil && !noRaw {
			rc = c.rawConn()
		}
		if rc != nil {
			o := c.serveRaw(rc)
			if o == rawEnd || o == rawServe && !c.serveHead() {
				break
			}
			if o == rawServe {
				continue
			}
		}
		if !c.serveOne() {
			break
		}
	}
	if c.hijacked {
		// The handler owns nc and the buffers (and untracked them), and
		// may keep using the request, its header map and URL (the h2c
		// upgrade serves it on another goroutine): c is not reused.
		return
	}
	l.h1.remove(c)
	if g := ci.gauge; g != nil {
		g.Dec()
	}
	nc.Close()
	c.release()
}

// release returns c to the pool without references to the connection.
func (c *h1conn) release() {
	if c.br != nil {
		c.br.Reset(nil)
	}
	if c.bw != nil {
		c.bw.Reset(nil)
	}
	if cap(c.head) > 16<<10 {
		c.head = nil
	}
	clear(c.hdr)
	c.w.reset()
	c.l, c.ci, c.nc, c.req, c.url, c.h = nil, nil, nil, nil, url.URL{}, h1head{}
	h1Pool.Put(c)
}

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// isH2Preface reads as far as needed to tell the h2 preface from an
// HTTP/1.x request: a short malformed request is not kept waiting for 24
// bytes.
func (c *h1conn) isH2Preface() bool {
	for n := 1; n <= len(h2Preface); n++ {
		b, err := c.br.Peek(n)
		if err != nil || b[n-1] != h2Preface[n-1] {
			return false
		}
	}
	return true
}

func (c *h1conn) shutting() bool { return c.l.h1.shut.Load() }

// enterIdle arms the idle timeout before waiting for the next request and
// marks c idle, so that Shutdown may close it; false means Shutdown has
// begun and the connection ends now.
func (c *h1conn) enterIdle() bool {
	c.idleDL.arm(c.nc, c.l.s.limits.IdleTimeout)
	c.state.Store(h1Idle)
	return !(c.shutting() && c.state.CompareAndSwap(h1Idle, h1Active))
}

// serveOne reads and answers one request; false ends the connection.
func (c *h1conn) serveOne() bool {
	lim := &c.l.s.limits
	waited := false
	if c.br.Buffered() == 0 {
		if !c.enterIdle() {
			return false
		}
		_, err := c.br.Peek(1)
		if !c.state.CompareAndSwap(h1Idle, h1Active) || err != nil {
			return false // closed by Shutdown, by the client, or idle too long
		}
		waited = true
	}
	// The header timeout runs from the head's first byte; a head that came
	// whole in that first read needs no further read, nor a deadline.
	if !waited || !headComplete(c.br) {
		c.setReadDeadline(time.Now().Add(lim.ReadHeaderTimeout))
	}
	if err := c.readParse(); err != nil {
		c.refuse(err)
		return false
	}
	return c.serveHead()
}

// readParse reads the request head from br and parses it into c.h and
// c.hdr.
func (c *h1conn) readParse() error {
	head, err := readHead(c.br, c.head, c.l.s.limits.MaxHeaderBytes+4096)
	c.head = head[:0]
	if err != nil {
		return err
	}
	clear(c.hdr)
	return parseHead(head, &c.h, c.hdr)
}

// serveHead answers the request whose head c.h holds; false ends the
// connection.
func (c *h1conn) serveHead() bool {
	lim := &c.l.s.limits
	nc := c.nc
	if c.h.chunked || c.h.cl > 0 {
		// Body reads run under body_read_timeout (armBodyRead), not the
		// head's deadline. Without a body the connection is not read
		// until the next request, which sets its own.
		c.dmu.Lock()
		c.bodyHalted = false
		c.dmu.Unlock()
		if lim.BodyReadTimeout > 0 {
			c.setReadDeadline(time.Now().Add(lim.BodyReadTimeout))
		} else {
			c.setReadDeadline(time.Time{})
		}
	}
	if lim.WriteTimeout > 0 {
		nc.SetWriteDeadline(time.Now().Add(lim.WriteTimeout))
	}

	h := &c.h
	r := c.req
	c.url = h.url
	r.Method, r.URL, r.Proto, r.ProtoMajor, r.ProtoMinor = h.method, &c.url, h.proto, 1, h.minor
	r.Header, r.Host, r.RequestURI, r.RemoteAddr = c.hdr, h.host, h.target, c.remote
	r.TLS, r.Close, r.Trailer, r.TransferEncoding = c.ci.conn.TLS, h.close, nil, nil
	r.Form, r.PostForm, r.MultipartForm, r.GetBody, r.Response, r.Pattern = nil, nil, nil, nil, nil, ""
	r.ContentLength = h.cl
	var body *h1body
	switch {
	case h.chunked:
		body = &h1body{c: c, br: c.br, chunked: true}
		r.TransferEncoding = chunkedTE
		if h.trailer {
			r.Trailer = http.Header{}
			body.trailer = r.Trailer
		}
	case h.cl > 0:
		body = &h1body{c: c, br: c.br, rem: h.cl}
	default:
		r.ContentLength = 0
		r.Body = http.NoBody
	}
	if body != nil {
		body.cont = h.expect100
		body.limit = -1
		if isH2CUpgrade(c.hdr) {
			// The h2c upgrade handler buffers the whole body, beyond the
			// proxy's per-request accounting: bound it here.
			body.limit = lim.MaxBodyBytes
		}
		r.Body = body
	}
	c.w.reset()
	c.closeAfter = h.close

	aborted := c.run()
	if c.hijacked || aborted {
		if body != nil {
			// Unblock a late body reader before closing the body under it.
			if !c.hijacked {
				c.haltBody(time.Now())
			}
			body.Close()
		}
		if aborted && !c.hijacked {
			c.bw.Flush()
		}
		return false
	}
	werr := c.w.finish()
	keep := werr == nil && !c.closeAfter && !c.shutting()
	if body != nil && !keep {
		// The connection ends (Connection: close, e.g. after a 413): do
		// not wait for a body nobody will read. Unblock a late reader,
		// then half-close at once so the client sees the end now
		// (RFC 9112 §9.6), lingering only briefly for unread bytes.
		c.haltBody(time.Now())
		body.stop()
		if werr == nil {
			c.lingerClose()
		}
		return false
	}
	if body != nil {
		// A late body reader (an upload goroutine) or a discard must not
		// wait forever on a client that stopped sending.
		c.haltBody(time.Now().Add(lim.ReadHeaderTimeout))
		if !body.finish() {
			if keep && werr == nil {
				c.lingerClose()
			}
			keep = false
		}
	}
	return keep
}

// run calls the proxy's handler; true means it aborted the response.
func (c *h1conn) run() (aborted bool) {
	defer func() {
		if p := recover(); p != nil {
			aborted = true
			if p != http.ErrAbortHandler {
				buf := make([]byte, 16<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.l.s.log.Error("panic serving request", "client", c.ci.conn.ClientAddr,
					"err", fmt.Sprint(p), "stack", string(buf))
			}
		}
	}()
	c.l.s.serveConn(c.ci, &c.w, c.req)
	return false
}

// writeContinue sends "100 Continue" unless the answer has begun.
func (c *h1conn) writeContinue() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.w.committed || c.w.hijacked || c.h.minor == 0 {
		return
	}
	c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	c.bw.Flush()
}

// refuse answers a request the engine rejected, then the connection ends.
// Read errors (timeouts, the client leaving) end it silently as with
// net/http.
func (c *h1conn) refuse(err error) {
	var he *h1Error
	if isTimeout(err) {
		// A head begun but not finished within ReadHeaderTimeout (an idle
		// connection ends before any head is read, without an answer).
		he = &h1Error{code: http.StatusRequestTimeout, msg: "request head not received in time"}
	} else if !errors.As(err, &he) {
		if err != errHeadEOF && !errors.Is(err, io.EOF) {
			c.l.s.log.Debug("reading request failed", "client", c.ci.conn.ClientAddr, "err", err)
		}
		return
	}
	c.l.s.log.Info("request refused", "client", c.ci.conn.ClientAddr, "status", he.code, "err", he.Error())
	text := strconv.Itoa(he.code) + " " + http.StatusText(he.code)
	if !he.terse {
		text += ": " + he.msg
	}
	bw := c.bw
	c.nc.SetWriteDeadline(time.Now().Add(c.l.s.limits.ReadHeaderTimeout))
	bw.WriteString("HTTP/1.1 " + strconv.Itoa(he.code) + " " + http.StatusText(he.code) + "\r\n")
	bw.WriteString("Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ")
	bw.WriteString(strconv.Itoa(len(text)))
	bw.WriteString("\r\n\r\n")
	bw.WriteString(text)
	if bw.Flush() == nil {
		c.lingerClose()
	}
}

// lingerClose half-closes and drains briefly before the close, so that
// unread request bytes do not turn into a reset that destroys the answer
// just sent (what net/http does in closeWriteAndWait).
func (c *h1conn) lingerClose() {
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok {
		return
	}
	cw.CloseWrite()
	c.setReadDeadline(time.Now().Add(500 * time.Millisecond))
	io.CopyN(io.Discard, c.nc, maxDiscard)
}

// h1tracker knows a listener's engine connections and whether they are
// idle, so that Shutdown closes idle ones at once and lets active ones
// finish their request (net/http's ConnState drain).
type h1tracker struct {
	mu    sync.Mutex
	conns map[*h1conn]struct{}
	shut  atomic.Bool
}

func (t *h1tracker) add(c *h1conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shut.Load() {
		return false
	}
	if t.conns == nil {
		t.conns = map[*h1conn]struct{}{}
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *h1tracker) remove(c *h1conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// closeIdle closes connections waiting for a request; with all set, every
// connection. It reports how many are left.
func (t *h1tracker) closeIdle(all bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.conns {
		if all || c.state.CompareAndSwap(h1Idle, h1Closing) {
			// Close waits until no read is in progress on the socket, and
			// raw mode (h1raw.go) holds the read side while it answers a
			// request: closing must not wait for that answer.
			go c.nc.Close()
		}
	}
	return len(t.conns)
}

// shutdown stops new requests and waits (bounded by ctx) until the
// connections are gone; at ctx's end it closes the rest.
func (t *h1tracker) shutdown(ctx context.Context) {
	t.shut.Store(true)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for t.closeIdle(false) > 0 {
		select {
		case <-ctx.Done():
			t.closeIdle(true)
			return
		case <-tick.C:
		}
	}
}
