package proxy

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/proxy/upstream"
)

// xstate is the per-request state, pooled: the exchange the hooks see plus
// what the proxy needs to finish the request.
type xstate struct {
	x     exchange.Exchange
	req   exchange.Request
	conn  exchange.Conn // per-request copy when trusted proxies name the client
	body  *reqBody      // nil when the request has no body
	small []byte        // a small body read ahead, replayable (see forward)
	// sentPath is the path as the client sent it when it was normalized
	// into normPath for the policies; "" when there was nothing to do.
	sentPath, normPath string
	f                  fwd
	tried              [4]*upstream.Target

	target  *upstream.Target // the upstream that answered, for End and logs
	tpool   *upstream.Pool
	upErr   error  // upstream failure after the response header (passive health)
	upconn  *pconn // upstream connection of a 101 answer, to pipe
	h1b     h1Body // body reader of an HTTP/1.1 upstream answer
	head    respHead
	fixed   fixedReader
	chunked chunkedBody
	res     exchange.Response

	hooked   [5]hookRec // endpoints whose OnRequest ran, for OnResponse/Done
	nhooked  int
	closeCon bool // answer with Connection: close (unread body)

	rid reqIDHandler // x.Log's handler when a policy runs
	lg  slog.Logger  // x.Log when a policy runs

	client http.ResponseWriter // where the upstream's 103 Early Hints go; nil: dropped
}

type hookRec struct {
	h      exchange.Hooks
	ep     *exchange.Endpoint
	pinned any
}

var xsPool = sync.Pool{New: func() any { return new(xstate) }}

// Copy buffers: 32 KiB for streams and big bodies, 4 KiB for bodies known
// to be small (most API answers), so that refilling the pools after a GC
// does not zero 32 KiB per small request.
var (
	bufPool      = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
	smallBufPool = sync.Pool{New: func() any { b := make([]byte, 4<<10); return &b }}
)

// getBuf returns a copy buffer suited to a body of length n (-1: unknown)
// and the pool it goes back to.
func getBuf(n int64) (*[]byte, *sync.Pool) {
	if n >= 0 && n <= 4<<10 {
		return smallBufPool.Get().(*[]byte), &smallBufPool
	}
	return bufPool.Get().(*[]byte), &bufPool
}

var (
	via11 = []string{"1.1 sluice"}
	via20 = []string{"2.0 sluice"}
)

// serveHTTP is the net/http handler of every listener.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	ci, _ := r.Context().Value(connKey{}).(*connInfo)
	s.serveConn(ci, w, r)
}

// serveConn serves a request that came on the connection ci. The
// HTTP/1.1 engine calls it directly: it knows ci without a lookup in the
// request's context.
func (s *Server) serveConn(ci *connInfo, w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 && r.TLS == nil && (ci == nil || !ci.tls) && isH2CUpgrade(r.Header) && (r.Body == nil || r.Body == http.NoBody) {
		// The h2c handler hijacks the connection; track it so that
		// Shutdown closes it at the deadline like other upgrades.
		s.h2c.ServeHTTP(&trackingHijacker{ResponseWriter: w, s: s}, r)
		return
	}
	s.serveWith(ci, w, r)
}

// serveRequest handles one request after protocol negotiation (the h2c
// handler's streams come here).
func (s *Server) serveRequest(w http.ResponseWriter, r *http.Request) {
	ci, _ := r.Context().Value(connKey{}).(*connInfo)
	if r.ProtoMajor == 1 && isH2CUpgrade(r.Header) {
		// Stream 1 of a connection the h2c handler just upgraded: the
		// request that asked for the upgrade, answered over h2. Its
		// Upgrade was for us (hop-by-hop, RFC 9110 §7.8) and must not
		// reach the upstream as an upgrade request of its own.
		for _, k := range [...]string{"Connection", "Upgrade", "Http2-Settings"} {
			delete(r.Header, k)
		}
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
	}
	s.serveWith(ci, w, r)
}

func (s *Server) serveWith(ci *connInfo, w http.ResponseWriter, r *http.Request) {
	if ci == nil {
		http.Error(w, "500 Internal Server Error: connection without state", http.StatusInternalServerError)
		return
	}
	xs := xsPool.Get().(*xstate)
	abort := s.serveExchange(xs, ci, w, r)
	// Goroutines that outlive the exchange (upload writers) hold only the
	// heap-allocated reqBody, never xs, so it can always be pooled. The
	// upstream answer's header map is kept for the next answer: nothing
	// holds it past the exchange (h2 clones what it sends).
	hdr := xs.head.header
	*xs = xstate{}
	if len(hdr) <= 32 {
		clear(hdr)
		xs.head.header = hdr
	}
	xsPool.Put(xs)
	if abort {
		// Close the client connection (h1) or reset the stream (h2): the
		// response is incomplete or the policy asked for it.
		panic(http.ErrAbortHandler)
	}
}

// serveExchange runs one request end to end. It returns true when the
// client connection/stream must be aborted.
func (s *Server) serveExchange(xs *xstate, ci *connInfo, w http.ResponseWriter, r *http.Request) (abort bool) {
	x := &xs.x
	x.ID = newID()
	x.Start = time.Now()
	x.Ctx = r.Context()
	x.Conn = &ci.conn
	x.Log = s.log
	x.Req = &xs.req
	if r.ProtoAtLeast(1, 1) {
		xs.client = w // HTTP/1.0 clients get no 1xx answers (RFC 9110 §15.2)
	}
	req := x.Req
	req.Method = r.Method
	req.Scheme = "http"
	if ci.tls {
		req.Scheme = "https"
	}
	req.Host = r.Host
	req.Path = r.URL.EscapedPath()
	if req.Path == "" {
		req.Path = "/"
	}
	if n := normalizePath(req.Path); n != req.Path {
		// Policies see the normalized path; the upstream gets the one
		// sent unless a policy changed it (pathnorm.go).
		xs.sentPath, xs.normPath = req.Path, n
		req.Path = n
	}
	req.RawQuery = r.URL.RawQuery
	req.Proto = r.Proto
	if len(r.Header["Connection"]) > 0 {
		// The fields the client's Connection names are hop-by-hop (RFC
		// 9110 §7.6.1): they go now, before any policy runs, so that a
		// client cannot strip fields a policy adds (Connection: X-User).
		for _, k := range connectionNames(r.Header) {
			delete(r.Header, k)
		}
	}
	req.Header = r.Header
	req.ContentLength = r.ContentLength
	req.Trailer = r.Trailer
	req.Body = http.NoBody
	if r.Body != nil && r.Body != http.NoBody {
		xs.body = &reqBody{rc: r.Body, max: -1}
		req.Body = xs.body
	}

	// The engine's parser checked Host already (validHost); net/http, its
	// HTTP/1.x fallback, and HTTP/2 let any sub-delim through, which
	// X-Forwarded-Host and Forwarded would then carry. The same parser
	// dropped fields named with "_", which these keep.
	hw, engine := w.(*h1writer)
	badHost := !engine && !validHost(r.Host)
	// The engine's parser refuses these targets too; x/net/http2 passes a
	// :path with '#', spaces, 8-bit bytes or an absolute URI on, which
	// would reach the upstream re-encoded (/a#b as /a%23b: another
	// resource) or silently cut.
	badTarget := !engine && r.ProtoMajor == 2 && !validH2Target(r.Method, r.RequestURI)
	// net/http and x/net/http2 read a content-length they cannot parse
	// ("+5", "5, 5") as 0 and take the first of several: the body would
	// go up cut or framed by a value the client did not mean.
	badLength := false
	if cl := r.Header["Content-Length"]; !engine && len(cl) > 0 {
		for _, v := range cl {
			if n, ok := parseLength(v); !ok || n != r.ContentLength {
				badLength = true
			}
		}
	}
	var dropped int
	if engine {
		dropped = hw.c.h.dropped
	} else {
		dropped = dropUnderscored(r.Header)
	}
	if dropped > 0 {
		s.log.LogAttrs(x.Ctx, slog.LevelDebug, "request header fields with '_' dropped",
			slog.String("request_id", x.ID), slog.Int("fields", dropped))
	}

	v := s.tbl.Acquire()
	defer v.Release()
	var e *endpoint
	if v != nil && !badHost && !badTarget && !badLength {
		if rt := ci.l.routes(v.Val); rt != nil {
			host := normHost(r.Host)
			if ci.tls {
				// The Host chooses among the port's https endpoints; a Host
				// that names none (an IP, a stale name) falls back to the
				// endpoint the SNI chose.
				if e = rt.tls.match(host); e == nil {
					e = rt.tls.match(ci.sni)
				}
			} else {
				e = rt.plain.match(host)
			}
		}
	}

	var err error
	switch {
	case badHost:
		err = errBadHost
	case badTarget:
		err = errBadTarget
	case badLength:
		err = errBadLength
		xs.closeCon = true
	case v == nil:
		err = errNotConfigured
	case e == nil && ci.tls:
		err = errNoHost // a connection reused for a host it does not serve
	case e == nil:
		err = errUnknownHost
	case r.Method == http.MethodConnect:
		x.Endpoint = &e.ep
		err = errConnect
	default:
		x.Endpoint = &e.ep
		x.Internals = v.Val
		s.prepare(xs, ci, e, r)
		if max := e.limits.MaxBodyBytes; max >= 0 {
			if xs.body != nil {
				xs.body.max = max
			}
			if r.ContentLength > max {
				err = errBodyTooLarge
				xs.closeCon = true
			}
		}
		if err == nil {
			err = s.run(xs, e, v.Val, 0)
		}
	}
	if errors.Is(err, exchange.ErrCloseConnection) {
		s.finish(xs, e, r, 0, 0)
		return true
	}
	if err != nil {
		s.fail(xs, err)
	}
	status := x.Res.StatusCode
	out, werr := s.writeResponse(xs, w, r)
	if werr != nil && out == 0 && !errors.Is(werr, errClientGone) && !x.Res.Generated {
		if hw, ok := w.(*h1writer); ok && hw.retract() {
			// The upstream's body broke before any of the answer was sent
			// (say, a malformed first chunk that came with the head): the
			// client gets a 502 (504 on a timeout) rather than a connection
			// cut without an answer. Passive health still counts it.
			if xs.upErr == nil {
				xs.upErr = werr
			}
			s.fail(xs, werr)
			status = x.Res.StatusCode
			out, werr = s.writeResponse(xs, w, r)
		}
	}
	if werr != nil {
		abort = true
		if xs.upErr == nil && !errors.Is(werr, errClientGone) && x.Ctx.Err() == nil {
			xs.upErr = werr
			s.log.LogAttrs(x.Ctx, slog.LevelWarn, "response aborted",
				slog.String("request_id", x.ID), slog.Any("err", werr))
		}
	}
	s.finish(xs, e, r, status, out)
	return abort
}

// prepare fills what depends on the endpoint and the peer.
func (s *Server) prepare(xs *xstate, ci *connInfo, e *endpoint, r *http.Request) {
	f := &xs.f
	f.peerIP = ci.peerIP
	f.proto = xs.req.Scheme
	f.host = r.Host
	f.id = xs.x.ID
	f.via = via11[0]
	if r.ProtoMajor == 2 {
		f.via = via20[0]
	}
	if len(s.trusted) > 0 && inPrefixes(ci.conn.PeerAddr.Addr(), s.trusted) {
		f.trusted = true
		if a, ok := clientFromChain(r.Header, s.trusted); ok {
			xs.conn = ci.conn
			xs.conn.ClientAddr = netip.AddrPortFrom(a, 0)
			xs.conn.ClientIP = ""
			xs.x.Conn = &xs.conn
		}
	}
}

// run takes the exchange through endpoint e: its request hooks, then the
// upstream or a forward-internal endpoint, then its response hooks. On a
// nil return x.Res is set.
func (s *Server) run(xs *xstate, e *endpoint, t *table, depth int) error {
	x := &xs.x
	rec := -1
	var err error
	if e.hooks != nil && xs.nhooked < len(xs.hooked) {
		if x.Log == s.log {
			// Policies log through x.Log: give their lines the request id,
			// added only to lines actually logged.
			xs.rid = reqIDHandler{h: s.log.Handler(), id: x.ID}
			xs.lg = *slog.New(&xs.rid)
			x.Log = &xs.lg
		}
		x.Endpoint = &e.ep
		x.Pinned = nil
		err = callHook(e.hooks.OnRequest, x)
		rec = xs.nhooked
		xs.hooked[rec] = hookRec{h: e.hooks, ep: &e.ep, pinned: x.Pinned}
		xs.nhooked++
	}
	if err == nil && x.Res == nil {
		if fi := x.ForwardInternal; fi != "" {
			x.ForwardInternal = ""
			ie := t.internalFor(fi)
			switch {
			case depth >= len(xs.hooked)-1:
				err = errForwardLoop
			case ie == nil:
				err = errUnknownForward
			default:
				err = s.run(xs, ie, t, depth+1)
			}
		} else {
			err = s.forward(xs, e)
		}
	}
	if errors.Is(err, exchange.ErrCloseConnection) {
		return err
	}
	if err != nil {
		s.fail(xs, err)
	}
	if rec >= 0 {
		hr := xs.hooked[rec]
		x.Endpoint, x.Pinned = hr.ep, hr.pinned
		if err := callHook(e.hooks.OnResponse, x); err != nil {
			if errors.Is(err, exchange.ErrCloseConnection) {
				return err
			}
			s.fail(xs, err)
		}
		xs.hooked[rec].pinned = x.Pinned
		if x.Res == nil {
			s.fail(xs, errors.New("policy removed the response"))
		}
	}
	return nil
}

// fail replaces the response with the answer for err and logs it with the
// request id. Any upstream body already held is released.
func (s *Server) fail(xs *xstate, err error) {
	x := &xs.x
	if x.Res != nil && x.Res.Body != nil {
		x.Res.Body.Close()
	}
	if xs.upconn != nil {
		xs.upconn.close()
		xs.upconn = nil
	}
	if x.Ctx.Err() != nil {
		err = &exchange.Error{Status: errClientClosed.Status, Msg: errClientClosed.Msg, Err: err}
	}
	res, xe := errorResponse(x.ID, err)
	if x.Req != nil && isGRPC(x.Req.Header) {
		res = grpcError(x.ID, xe)
	}
	x.Res = res
	if xe.Status == http.StatusRequestEntityTooLarge || xe.Status == http.StatusBadRequest {
		xs.closeCon = true
	}
	lvl := slog.LevelInfo
	if xe.Status >= 500 && xe.Status != errClientClosed.Status {
		lvl = slog.LevelWarn
	}
	ep := ""
	if x.Endpoint != nil {
		ep = x.Endpoint.ID
	}
	s.log.LogAttrs(x.Ctx, lvl, "request failed",
		slog.String("request_id", x.ID), slog.String("endpoint", ep),
		slog.Int("status", xe.Status), slog.String("msg", xe.Msg), slog.Any("err", xe.Err))
}

// callHook runs a policy hook; a panic in it fails the request only.
func callHook(fn func(*exchange.Exchange) error, x *exchange.Exchange) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &exchange.Error{Status: http.StatusInternalServerError, Msg: "policy failed",
				Err: errors.New("panic in policy hook")}
		}
	}()
	return fn(x)
}

// finish runs Done hooks, releases the upstream, records metrics and the
// access log line.
func (s *Server) finish(xs *xstate, e *endpoint, r *http.Request, status int, out int64) {
	x := &xs.x
	for i := xs.nhooked - 1; i >= 0; i-- {
		hr := xs.hooked[i]
		x.Endpoint, x.Pinned = hr.ep, hr.pinned
		func() {
			defer func() { _ = recover() }()
			hr.h.Done(x)
		}()
	}
	if xs.tpool != nil {
		upErr := xs.upErr
		if upErr != nil && x.Ctx.Err() != nil {
			upErr = nil // the client left (h2 reset, deadline): not the upstream's fault
		}
		xs.tpool.End(xs.target, upErr)
	}
	d := time.Since(x.Start)
	var in int64
	if xs.body != nil {
		in = xs.body.n.Load()
	}
	if e != nil {
		e.metrics.observe(status, d.Seconds(), in, out)
	}
	if s.access != nil {
		ep, up := "", ""
		if e != nil {
			ep = e.ep.ID
		}
		if xs.target != nil {
			up = xs.target.Addr
		}
		s.access.LogAttrs(x.Ctx, slog.LevelInfo, "request",
			slog.String("request_id", x.ID),
			slog.String("endpoint", ep),
			slog.String("client_ip", x.Conn.ClientAddr.Addr().String()),
			slog.String("method", r.Method),
			slog.String("host", r.Host),
			slog.String("path", xs.req.Path),
			slog.String("proto", r.Proto),
			slog.Int("status", status),
			slog.Int64("bytes_in", in),
			slog.Int64("bytes_out", out),
			slog.Float64("duration_ms", float64(d.Microseconds())/1000),
			slog.String("upstream", up),
		)
	}
}

// reqBody counts the request body and enforces MaxBodyBytes while it
// streams (chunked uploads have no declared length to check up front).
//
// It is read by upload goroutines that may outlive the exchange, hence
// heap-allocated per request and atomic counters.
type reqBody struct {
	rc      io.ReadCloser
	n       atomic.Int64
	max     int64 // <0: unlimited
	started atomic.Bool
}

func (b *reqBody) Read(p []byte) (int, error) {
	b.started.Store(true)
	n, err := b.rc.Read(p)
	t := b.n.Add(int64(n))
	if b.max >= 0 && t > b.max {
		return n, errBodyTooLarge
	}
	if err != nil && err != io.EOF {
		return n, &clientBodyError{err}
	}
	return n, err
}

func (b *reqBody) Close() error { return b.rc.Close() }

// trackingHijacker registers a connection hijacked by the h2c handler with
// the server until it is closed.
type trackingHijacker struct {
	http.ResponseWriter
	s *Server
}

func (t *trackingHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(t.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	tc := &trackedConn{Conn: c, s: t.s}
	t.s.trackHijacked(tc, true)
	return tc, brw, nil
}

func (t *trackingHijacker) Flush() {
	http.NewResponseController(t.ResponseWriter).Flush()
}

type trackedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.s.trackHijacked(c, false) })
	return c.Conn.Close()
}

// upPath is the path the upstream gets: the one the client sent, unless a
// policy changed the normalized one policies saw.
func (xs *xstate) upPath() string {
	if xs.sentPath != "" && xs.req.Path == xs.normPath {
		return xs.sentPath
	}
	return xs.req.Path
}
