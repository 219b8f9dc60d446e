package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/proxy/upstream"
	"golang.org/x/net/http/httpguts"
)

// connPool is the HTTP/1.1 client of one upstream target: a bounded LIFO
// stack of idle connections. LIFO keeps the hot connections hot and lets
// the cold ones at the bottom expire. No goroutine runs per connection:
// requests are written and responses read by the handler's goroutine (an
// upload body is the exception, written concurrently so that upstreams may
// answer or stream before the upload ends).
type connPool struct {
	t       *upstream.Target
	e       *endpoint
	limits  *Limits
	tlsConf *tls.Config

	mu     sync.Mutex
	idle   []*pconn
	closed bool
	// reaper closes expired idle connections when no traffic comes to do
	// it (put drops the oldest on the way); armed while any are idle.
	reaper *time.Timer
}

// pconn is one upstream connection with its buffers.
type pconn struct {
	c      net.Conn
	rhtDL  lazyDeadline // response_header_timeout, re-armed lazily; other deadlines reset it
	br     *bufio.Reader
	bw     *bufio.Writer
	p      *connPool
	idleAt int64  // nanotime() when it went idle
	head   []byte // scratch for response heads
	// raw waits for the response without a read that would fail with
	// EAGAIN first (nil on TLS and other non-socket connections).
	raw syscall.RawConn
	// flushAndWait's state, kept here so that its callback is allocated
	// once per connection. probe asks it to check the socket for stray
	// bytes before the request leaves (a reused connection).
	waitFn func(uintptr) bool
	sent   bool
	probe  bool
	werr   error
	// stallAt is when armStall last moved the read deadline (nanotime).
	stallAt int64
}

// armStall gives the upstream upstream_stall_timeout from now to send the
// next bytes of an answer's body (nginx's proxy_read_timeout), so that a
// body that stops without the connection closing does not hold the
// exchange, its client and this connection for ever. The deadline moves at
// most about once a second and lies a second further out, so it never
// fires early.
func (pc *pconn) armStall() {
	if d := pc.p.limits.UpstreamStallTimeout; stallDue(d, &pc.stallAt) {
		pc.setReadDeadline(time.Now().Add(d + time.Second))
	}
}

// stallDue says whether a stall deadline of d, last moved at *at
// (nanotime, 0: never), is to be moved now, and notes the move: at most
// about once a second, so the deadlines are set a second beyond d.
func stallDue(d time.Duration, at *int64) bool {
	if d <= 0 {
		return false
	}
	if now := nanotime(); *at == 0 || now-*at >= int64(time.Second) {
		*at = now
		return true
	}
	return false
}

// errStray is what a reused connection's probe found: an EOF, an error or
// bytes nobody asked for. Nothing was sent, so the request is retried on
// a fresh connection.
var errStray = errors.New("upstream connection closed or sent stray bytes while idle")

func newConnPool(t *upstream.Target, e *endpoint) *connPool {
	p := &connPool{t: t, e: e, limits: &e.limits}
	if t.Scheme == "https" {
		c := e.upTLS.Clone()
		c.ServerName = t.ServerName
		c.NextProtos = []string{"http/1.1"}
		c.ClientSessionCache = tls.NewLRUClientSessionCache(64)
		p.tlsConf = c
	}
	return p
}

// get pops the most recently used idle connection that has not expired.
func (p *connPool) get() *pconn {
	var stale []*pconn
	var pc *pconn
	p.mu.Lock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if time.Duration(nanotime()-c.idleAt) > p.limits.UpstreamIdleTimeout {
			stale = append(stale, c)
			continue
		}
		pc = c
		break
	}
	p.mu.Unlock()
	for _, c := range stale {
		c.c.Close()
	}
	return pc
}

func (p *connPool) put(pc *pconn) {
	pc.idleAt = nanotime()
	var evict *pconn
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.limits.MaxIdleConnsPerHost {
		p.mu.Unlock()
		pc.c.Close()
		return
	}
	// The bottom of the stack is the oldest; drop it once expired so an
	// idle pool shrinks without a reaper goroutine.
	if len(p.idle) > 0 && time.Duration(pc.idleAt-p.idle[0].idleAt) > p.limits.UpstreamIdleTimeout {
		evict = p.idle[0]
		copy(p.idle, p.idle[1:])
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
	}
	p.idle = append(p.idle, pc)
	if p.reaper == nil {
		p.reaper = time.AfterFunc(p.limits.UpstreamIdleTimeout, p.reap)
	}
	p.mu.Unlock()
	if evict != nil {
		evict.c.Close()
	}
}

// reap closes the idle connections unused for upstream_idle_timeout and
// comes back when the oldest remaining one will be.
func (p *connPool) reap() {
	var expired []*pconn
	p.mu.Lock()
	now, d := nanotime(), p.limits.UpstreamIdleTimeout
	n := 0
	for n < len(p.idle) && time.Duration(now-p.idle[n].idleAt) >= d {
		n++
	}
	expired = append(expired, p.idle[:n]...)
	m := copy(p.idle, p.idle[n:])
	clear(p.idle[m:])
	p.idle = p.idle[:m]
	p.reaper = nil
	if len(p.idle) > 0 && !p.closed {
		p.reaper = time.AfterFunc(d-time.Duration(now-p.idle[0].idleAt), p.reap)
	}
	p.mu.Unlock()
	for _, c := range expired {
		c.c.Close()
	}
}

func (p *connPool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	if p.reaper != nil {
		p.reaper.Stop()
		p.reaper = nil
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.c.Close()
	}
}

func (p *connPool) dial(ctx context.Context) (*pconn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.limits.DialTimeout)
	defer cancel()
	c, err := p.e.dial(ctx, p.t.Network, p.t.Addr)
	if err != nil {
		return nil, &dialError{err}
	}
	if p.tlsConf != nil {
		tc := tls.Client(c, p.tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, &dialError{err}
		}
		c = tc
	}
	pc := &pconn{c: c, br: bufio.NewReaderSize(c, 8<<10), bw: bufio.NewWriterSize(c, 8<<10), p: p}
	if sc, ok := c.(syscall.Conn); ok {
		pc.raw, _ = sc.SyscallConn()
		pc.waitFn = pc.flushThenWait
	}
	return pc, nil
}

func (pc *pconn) close() { pc.c.Close() }

// setReadDeadline sets a read deadline other than the response header
// timeout's.
func (pc *pconn) setReadDeadline(t time.Time) { pc.rhtDL.set(pc.c, t) }

// alive probes an idle connection (see connAlive). The read deadline of
// its last answer may have passed, which would fail the probe's read.
func (pc *pconn) alive() bool {
	pc.setReadDeadline(time.Time{})
	return connAlive(pc.c)
}

// staleError marks a reused connection that the upstream had closed while
// idle: nothing of the request was processed, so it is retried on a fresh
// connection.
type staleError struct{ err error }

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

// roundTrip sends the request to this target and reads the response head.
func (p *connPool) roundTrip(xs *xstate, upgrade bool) (*exchange.Response, error) {
	fresh := upgrade // an upgraded connection never returns to the pool
	small := xs.small
	req := xs.x.Req
	streamed := small == nil && req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0
	for attempt := 0; ; attempt++ {
		var pc *pconn
		for !fresh {
			// Every reuse checks that the connection is clean: no EOF and
			// no bytes that nobody asked for (a late or extra answer must
			// never become this request's). A request sent by raw write
			// checks inside that write's callback (flushThenWait), other
			// requests (uploads, TLS) probe here; both cost one
			// non-blocking recv. Bytes that came with an answer are
			// caught when it is read (h1Body.release).
			pc = p.get()
			if pc == nil || pc.raw != nil && !streamed || pc.alive() {
				break
			}
			pc.close()
		}
		reused := pc != nil
		if pc == nil {
			var err error
			if pc, err = p.dial(xs.x.Ctx); err != nil {
				return nil, err
			}
		}
		res, err := pc.roundTrip(xs, upgrade, reused, small)
		if se, ok := err.(*staleError); ok {
			if attempt < 2 {
				fresh = true
				continue
			}
			err = se.err
		}
		return res, err
	}
}

// errBadRequestLine is returned when a policy produced an unsendable request.
var errBadRequestLine = &exchange.Error{Status: http.StatusInternalServerError, Msg: "policy produced an invalid request"}

func validRequestLine(method, path, host string) bool {
	if method == "" || !httpguts.ValidHeaderFieldName(method) || path == "" {
		return false
	}
	for i := 0; i < len(path); i++ {
		if c := path[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return httpguts.ValidHostHeader(host)
}

// smallBody is the largest known-length body read before sending.
const smallBody = 4 << 10

func (pc *pconn) roundTrip(xs *xstate, upgrade, reused bool, small []byte) (*exchange.Response, error) {
	x := &xs.x
	req := x.Req
	hasBody := req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0
	host := req.Host
	if host == "" {
		host = pc.p.t.Addr
	}
	if !validRequestLine(req.Method, xs.upPath(), host) {
		pc.p.put(pc)
		return nil, errBadRequestLine
	}
	writeRequestHead(pc.bw, xs, host, upgrade, hasBody)
	if small != nil {
		pc.bw.Write(small)
	}
	streamed := hasBody && small == nil
	// An HTTP/2 client that resets its stream (or a gRPC deadline) cancels
	// the request's context: the wait for the answer's head then ends at
	// once and the upstream connection is closed, so the upstream stops
	// working for nobody (rapid reset cannot pile up upstream requests).
	// HTTP/1.x clients are not watched (context.AfterFunc costs 4
	// allocations per request, and their engine does not read while an
	// exchange runs): their wait is bounded by response_header_timeout.
	var stopWatch func() bool
	if x.Req.Proto == "HTTP/2.0" && x.Ctx.Done() != nil {
		stopWatch = context.AfterFunc(x.Ctx, func() { pc.c.SetReadDeadline(time.Unix(1, 0)) })
	}
	var werr, err error
	if pc.raw != nil && !streamed {
		pc.probe = reused
		werr, err = pc.flushAndWait()
	} else {
		werr = pc.bw.Flush()
	}
	if werr != nil {
		pc.close()
		if reused {
			return nil, &staleError{werr}
		}
		return nil, werr
	}
	var bw *bodyWriter
	if streamed {
		bw = &bodyWriter{done: make(chan struct{})}
		go bw.run(pc, req.Body, req.ContentLength, req.Trailer)
	}

	if err == nil {
		err = pc.readHead(x.Ctx, x.Req.Method, bw, xs, pc.raw != nil && !streamed)
	}
	if stopWatch != nil && !stopWatch() && err == nil {
		// The client left just as the head came: the deadline in the
		// past would fail the body's reads; the exchange is over anyway.
		err = x.Ctx.Err()
	}
	if err != nil {
		pc.close()
		if bw != nil {
			select {
			case <-bw.done:
				if bw.err != nil && isClientBodyErr(bw.err) {
					return nil, bw.err
				}
			default:
			}
			if reused && isStaleRead(err) && bw.cancel() {
				return nil, &staleError{err}
			}
		} else if reused && isStaleRead(err) {
			return nil, &staleError{err}
		}
		return nil, err
	}

	head := &xs.head
	res := &xs.res
	*res = exchange.Response{
		StatusCode:    head.status,
		Header:        head.header,
		ContentLength: -1,
		Trailer:       head.trailer,
	}
	if head.status == http.StatusSwitchingProtocols {
		if !upgrade {
			pc.close()
			return nil, errors.New("upstream switched protocols without an upgrade request")
		}
		pc.setReadDeadline(time.Time{}) // the pipe keeps its own time
		xs.upconn = pc
		return res, nil
	}
	if !(head.mode == bodyNone || head.mode == bodyFixed && int64(pc.br.Buffered()) >= head.length) {
		// More reads follow, each under upstream_stall_timeout rather than
		// the head's deadline. (An answer already in the buffer leaves it
		// set: the next request on this connection sets its own.)
		pc.stallAt = 0
		pc.armStall()
	}
	b := &xs.h1b
	*b = h1Body{pc: pc, bw: bw, reuse: !head.close && !upgrade}
	switch head.mode {
	case bodyNone:
		res.ContentLength = 0
		b.release(true)
		return res, nil
	case bodyFixed:
		res.ContentLength = head.length
		xs.fixed = fixedReader{br: pc.br, n: head.length}
		b.rc = &xs.fixed
		if head.length == 0 {
			b.release(true)
			return res, nil
		}
	case bodyChunked:
		xs.chunked = chunkedBody{br: pc.br, trailer: head.trailer}
		b.rc = &xs.chunked
		b.tr = &xs.chunked
	default:
		b.rc = pc.br
	}
	res.Body = b
	return res, nil
}

// flushAndWait sends the buffered request and waits until the socket is
// readable, under ResponseHeaderTimeout, without first trying a read that
// would only fail with EAGAIN: the wait is armed before the request leaves,
// so the answer's readiness cannot be missed. werr is the write's error,
// err the wait's.
func (pc *pconn) flushAndWait() (werr, err error) {
	pc.rhtDL.arm(pc.c, pc.p.limits.ResponseHeaderTimeout)
	pc.sent, pc.werr = false, nil
	err = pc.raw.Read(pc.waitFn)
	if werr = pc.werr; werr != nil {
		pc.werr = nil
		return werr, nil
	}
	return nil, err
}

// flushThenWait is flushAndWait's callback, bound once per connection
// (a closure per request would allocate).
func (pc *pconn) flushThenWait(fd uintptr) bool {
	if !pc.sent {
		pc.sent = true
		if pc.probe && strayBytes(fd) {
			pc.werr = errStray
			return true
		}
		pc.werr = pc.bw.Flush()
		return pc.werr != nil
	}
	return true
}

// Interim (1xx) answers from an upstream are bounded per request: an
// upstream must not flood the client with Early Hints nor hold the request
// (each one re-arms ResponseHeaderTimeout) with endless 1xx. The first
// maxHints 103s are passed on and later ones dropped; past maxInterim 1xx
// of any kind the request fails with 502. Go's Transport failed past 5
// before Go 1.24 (now it bounds their total size); 32 leaves room for a
// 100 Continue and a few 102s besides the hints.
const (
	maxHints   = 5
	maxInterim = 32
)

// readHead reads the response head, skipping 1xx answers other than 101.
// ResponseHeaderTimeout counts from the end of the upload.
// armed says the deadline was set just before. The deadline is left set:
// the caller clears it if the body needs more reads.
func (pc *pconn) readHead(ctx context.Context, method string, bw *bodyWriter, xs *xstate, armed bool) error {
	h := &xs.head
	rht := pc.p.limits.ResponseHeaderTimeout
	interim, hints := 0, 0
	for {
		for bw != nil && !bw.finished() {
			// Wait for the first byte without a deadline while the upload
			// is still running, then with the timeout.
			pc.setReadDeadline(time.Now().Add(rht))
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if _, err := pc.br.Peek(1); err == nil {
				break
			} else if !isTimeout(err) || ctx.Err() != nil {
				return err
			}
		}
		// response_header_timeout covers all the interim answers and the
		// final head together: a 1xx does not restart it.
		if !armed {
			pc.rhtDL.arm(pc.c, rht)
			armed = true
		}
		if err := readResponseHead(pc.br, &pc.head, method, h); err != nil {
			return err
		}
		if h.status >= 100 && h.status < 200 && h.status != http.StatusSwitchingProtocols {
			if interim++; interim > maxInterim {
				return badResponse("too many interim (1xx) responses")
			}
			if h.status == http.StatusEarlyHints && hints < maxHints {
				hints++
				xs.earlyHints(h.header)
			}
			continue
		}
		return nil
	}
}

// earlyHints passes an upstream's 103 Early Hints on to the client, less
// its hop-by-hop fields, at once (as Caddy does; nginx since 1.29 with
// early_hints). Other 1xx answers stay here: 100 Continue is the proxy's
// own business with the client, 102 is obsolete.
func (xs *xstate) earlyHints(h http.Header) {
	w := xs.client
	if w == nil {
		return
	}
	names := connectionNames(h)
	dst := w.Header()
	var added []string
	for k, vv := range h {
		if _, taken := dst[k]; !taken && !hopField(names, k) {
			dst[k] = vv
			added = append(added, k)
		}
	}
	w.WriteHeader(http.StatusEarlyHints)
	// A 1xx leaves the writer's map for the final answer: take the hints
	// back out of it.
	for _, k := range added {
		delete(dst, k)
	}
}

func isStaleRead(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func isClientBodyErr(err error) bool {
	var cbe *clientBodyError
	return errors.As(err, &cbe) || errors.Is(err, errBodyTooLarge)
}

// writeRequestHead writes the request line and headers straight into the
// connection's buffer: no header map is cloned.
func writeRequestHead(bw *bufio.Writer, xs *xstate, host string, upgrade, hasBody bool) {
	req := xs.x.Req
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(xs.upPath())
	if req.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(req.RawQuery)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	// The fields the client's Connection named were dropped before the
	// policies ran (serveExchange); what a policy added stays. The
	// engines validated every field the client sent: only a policy's
	// changes need checking.
	checked := xs.nhooked == 0
	for k, vv := range req.Header {
		if skipRequestHeader(k) || !checked && !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			if checked || httpguts.ValidHeaderFieldValue(v) {
				writeHeader(bw, k, v)
			}
		}
	}
	if hasToken(req.Header, "Te", "trailers") {
		bw.WriteString("Te: trailers\r\n")
	}
	if upgrade {
		bw.WriteString("Connection: Upgrade\r\n")
		for _, v := range req.Header["Upgrade"] {
			if httpguts.ValidHeaderFieldValue(v) {
				writeHeader(bw, "Upgrade", v)
			}
		}
	}
	xs.f.write(bw, req.Header)
	switch {
	case hasBody && req.ContentLength > 0:
		var b [20]byte
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(b[:0], req.ContentLength, 10))
		bw.WriteString("\r\n")
	case hasBody:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		bw.WriteString("Content-Length: 0\r\n")
	}
	bw.WriteString("\r\n")
}

// h1Body streams an HTTP/1.1 upstream body and gives the connection back
// to the pool once the body was read to its end and the upload finished.
type h1Body struct {
	pc    *pconn
	rc    io.Reader
	tr    *chunkedBody // trailers of a chunked body
	bw    *bodyWriter
	reuse bool
	done  bool
}

// upstreamBodyError marks a failure of the upstream while streaming.
type upstreamBodyError struct{ err error }

func (e *upstreamBodyError) Error() string { return "upstream body: " + e.err.Error() }
func (e *upstreamBodyError) Unwrap() error { return e.err }

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.pc.br.Buffered() == 0 {
		b.pc.armStall() // this read waits for the upstream
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.release(true)
	} else if err != nil {
		b.release(false)
		err = &upstreamBodyError{err}
	}
	return n, err
}

func (b *h1Body) Close() error {
	if !b.done {
		b.release(false)
	}
	return nil
}

func (b *h1Body) release(ok bool) {
	b.done = true
	pc := b.pc
	b.pc = nil
	// Bytes left after the answer (a body on HEAD/204, more than
	// Content-Length) would become the next request's answer.
	if ok && b.reuse && (b.bw == nil || b.bw.ok()) && pc.br.Buffered() == 0 {
		pc.p.put(pc)
	} else {
		pc.close()
	}
}

func (b *h1Body) buffered() int {
	if b.done {
		return 0
	}
	return b.pc.br.Buffered()
}

func (b *h1Body) trailer() http.Header {
	if b.tr == nil {
		return nil
	}
	return b.tr.trailer
}
