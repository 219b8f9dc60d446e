package proxy

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/proxy/l4"
	"github.com/sluicehq/sluice/proxy/upstream"
)

// forward sends the exchange to the endpoint's upstream pool. A failed
// connect is retried on another target as long as none of the request body
// was consumed (then nothing reached any upstream, whatever the method).
func (s *Server) forward(xs *xstate, e *endpoint) error {
	if e.pool == nil {
		return errNoUpstream
	}
	x := &xs.x
	req := x.Req
	upgrade := strings.HasPrefix(req.Proto, "HTTP/1") && isUpgrade(req.Header)
	grpc := isGRPC(req.Header)
	// A small body of known length is read before sending: it then goes out
	// in the same write as the head, needs no upload goroutine, and can be
	// sent again after a failed connect or to replace a stale pooled
	// connection. (Its own allocation: an h2 transport may still read it
	// after the exchange.)
	if cl := req.ContentLength; cl > 0 && cl <= smallBody && !upgrade && !grpc &&
		req.Body != nil && req.Body != http.NoBody {
		b := make([]byte, cl)
		if _, err := io.ReadFull(req.Body, b); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = &clientBodyError{io.ErrUnexpectedEOF}
			}
			return err
		}
		xs.small = b
	} else if cl == 0 && !upgrade && req.Body != nil && req.Body != http.NoBody {
		// A declared empty body that still has a stream behind it (an h2
		// request that said content-length: 0 and did not end its stream)
		// must be empty: bytes there would smuggle past the framing the
		// upstream gets. Whether the client sent any decides the answer,
		// not which comes first, it or the upstream's answer.
		var one [1]byte
		if n, err := io.ReadFull(req.Body, one[:]); n > 0 {
			return &clientBodyError{errors.New("request body longer than its Content-Length 0")}
		} else if err != io.EOF {
			return err
		}
	}
	tried := xs.tried[:0]
	var last error
	for {
		t, err := e.pool.Pick(tried)
		if err != nil {
			if last != nil {
				return last
			}
			return err
		}
		e.pool.Begin(t)
		res, err := s.roundTrip(xs, e, t, grpc, upgrade)
		if err == nil {
			xs.target, xs.tpool = t, e.pool
			x.Res = res
			return nil
		}
		var fault error
		if !isClientBodyErr(err) && x.Ctx.Err() == nil {
			// A client that went away (an h2 stream reset, a gRPC
			// deadline) cancels the dial or the wait: not the upstream's
			// fault, so not counted for passive health.
			fault = err
		}
		e.pool.End(t, fault)
		last = err
		var de *dialError
		if !errors.As(err, &de) || (xs.small == nil && xs.body != nil && xs.body.started.Load()) {
			return err
		}
		tried = append(tried, t)
	}
}

func (s *Server) roundTrip(xs *xstate, e *endpoint, t *upstream.Target, grpc, upgrade bool) (*exchange.Response, error) {
	switch {
	case t.Scheme == "h2c":
		return e.h2.roundTrip(xs, t, false)
	case grpc && (t.Scheme == "http" || t.Scheme == "unix"):
		return e.h2.roundTrip(xs, t, false)
	case grpc && t.Scheme == "https":
		return e.h2.roundTrip(xs, t, true)
	}
	p := e.h1[t]
	if p == nil {
		return nil, errors.New("upstream scheme " + t.Scheme + " cannot carry HTTP")
	}
	return p.roundTrip(xs, upgrade)
}

// upgrade completes a 101 answer: it hijacks the client connection, sends
// the 101 head and pipes bytes both ways (half-close aware) until either
// side is done or the server shuts down.
func (s *Server) upgrade(xs *xstate, w http.ResponseWriter, r *http.Request) (int64, error) {
	pc := xs.upconn
	xs.upconn = nil
	res := xs.x.Res
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		pc.close()
		return 0, err
	}
	s.trackHijacked(conn, true)
	s.trackHijacked(pc.c, true)
	defer s.trackHijacked(conn, false)
	defer s.trackHijacked(pc.c, false)
	defer conn.Close()
	defer pc.close()

	bw := brw.Writer
	bw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	for k, vv := range w.Header() {
		for _, v := range vv {
			if validField(k, v) {
				writeHeader(bw, k, v)
			}
		}
	}
	bw.WriteString("Connection: Upgrade\r\n")
	for _, v := range res.Header["Upgrade"] {
		if validField("Upgrade", v) {
			writeHeader(bw, "Upgrade", v)
		}
	}
	writeHeader(bw, "X-Request-Id", xs.x.ID)
	bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		return 0, errClientGone
	}
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		if _, err := pc.c.Write(b); err != nil {
			return 0, err
		}
	}
	var out int64
	if n := pc.br.Buffered(); n > 0 {
		b, _ := pc.br.Peek(n)
		if _, err := conn.Write(b); err != nil {
			return 0, errClientGone
		}
		out = int64(n)
	}
	in, o, _ := l4.Pipe(s.ctx, conn, pc.c, s.limits.IdleTimeout)
	if xs.body != nil {
		xs.body.n.Add(in)
	}
	return out + o, nil
}
