package proxy

// Raw mode: how the HTTP/1.x engine waits for the next request on a
// plaintext TCP or unix connection without a read that fails with EAGAIN.
//
// A net.Conn Read first clears the socket's readiness, then reads; between
// keep-alive requests that read finds nothing (EAGAIN) and only then does
// the goroutine park. That wasted read is one syscall in five per proxied
// request. Inside one syscall.RawConn.Read, readiness is cleared once, when
// it starts: any byte that arrives after a read that drained the socket
// marks it ready again, so the engine can park right after answering and
// read only when there is something to read.
//
// So serveRaw runs the connection's requests inside RawConn.Read, reading
// the socket itself (h1src in raw mode). Only requests that need nothing
// more from the socket are answered there: the whole head is buffered and
// there is no body and no Upgrade. Anything else (a body, an upgrade, a
// head larger than the buffer, a refused head) leaves raw mode with the
// head still buffered or parsed, and is served by the ordinary path, which
// may block in conn.Read; the next request re-enters raw mode.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/exchange"
)

// h1src is what c.br reads from: the connection, or in raw mode the socket.
type h1src struct {
	nc    net.Conn
	fd    int
	raw   bool
	short bool // the last raw read returned less than asked: it drained the socket
	n     *exchange.ByteCounts
}

var errWouldBlock = errors.New("read would block")

func (s *h1src) Read(p []byte) (int, error) {
	if !s.raw {
		return s.nc.Read(p)
	}
	for {
		n, err := syscall.Read(s.fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			s.short = true
			return 0, errWouldBlock
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		s.short = n < len(p)
		if s.n != nil {
			s.n.In.Add(int64(n))
		}
		return n, nil
	}
}

// rawConn returns the socket of a plaintext connection whose first bytes
// the listener's peek buffer no longer holds, or nil.
func (c *h1conn) rawConn() syscall.RawConn {
	pc, ok := c.nc.(*peekConn)
	if !ok || pc.br.Buffered() > 0 {
		return nil
	}
	var sc syscall.Conn
	switch t := pc.Conn.(type) {
	case *net.TCPConn:
		sc = t
	case *net.UnixConn:
		sc = t
	default:
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	c.src.n = pc.n
	return rc
}

// rawOutcome is how serveRaw ended.
type rawOutcome uint8

const (
	rawEnd     rawOutcome = iota // the connection is done
	rawServe                     // c.h holds a parsed head: serve it with serveHead
	rawReadOne                   // let serveOne read and serve the next request
)

// serveRaw answers requests in raw mode until one needs the ordinary path
// or the connection ends.
func (c *h1conn) serveRaw(rc syscall.RawConn) rawOutcome {
	lim := &c.l.s.limits
	out := rawEnd
	var refused error
	mustRead := true // readiness was just cleared: only a read tells
	headTimer := false
	err := rc.Read(func(fd uintptr) bool {
		c.src.fd, c.src.raw = int(fd), true
		if c.state.Load() == h1Idle && !c.state.CompareAndSwap(h1Idle, h1Active) {
			return true // closed by Shutdown
		}
		for {
			if !headComplete(c.br) {
				if c.br.Buffered() == c.br.Size() {
					out = rawReadOne // a head larger than the buffer
					return true
				}
				if !mustRead {
					// Nothing buffered is left unread on the socket: park
					// until it is readable, under the idle or head timeout.
					if c.br.Buffered() == 0 {
						if !c.enterIdle() {
							return true
						}
					} else if !headTimer {
						c.setReadDeadline(time.Now().Add(lim.ReadHeaderTimeout))
						headTimer = true
					}
					mustRead = true
					return false
				}
				_, err := c.br.Peek(c.br.Buffered() + 1)
				if err == errWouldBlock {
					mustRead = false
					continue
				}
				if err != nil {
					return true // the client left
				}
				mustRead = !c.src.short
				continue
			}
			if err := c.readParse(); err != nil {
				refused = err
				return true
			}
			headTimer = false
			if c.h.chunked || c.h.cl > 0 || len(c.hdr["Upgrade"]) > 0 {
				out = rawServe // reads the body or hands the socket over
				return true
			}
			if !c.serveHead() {
				return true
			}
			mustRead = !c.src.short
		}
	})
	c.src.raw = false
	switch {
	case refused != nil:
		c.refuse(refused)
		return rawEnd
	case err != nil:
		if n := c.br.Buffered(); isTimeout(err) && n > 2*leadingCRLF(peekAll(c.br)) {
			// 408: a head begun but not finished in time. Empty lines
			// alone begin none: the connection ends silently, as when
			// readHead times out after dropping them.
			c.refuse(err)
		}
		return rawEnd
	}
	return out
}

// headComplete says whether br holds a whole request head as readHead
// reads it: past the empty lines it drops (leadingCRLF), up to a line that
// is empty ("\n" or "\r\n"), the first one included (readHead refuses it
// without reading further).
func headComplete(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	b = b[2*leadingCRLF(b):]
	return bytes.HasPrefix(b, lf) || bytes.HasPrefix(b, crlf) ||
		bytes.Contains(b, lflf) || bytes.Contains(b, lfcrlf)
}

// leadingCRLF counts the empty lines at the start of b that readHead drops
// before a request line.
func leadingCRLF(b []byte) int {
	n := 0
	for n < maxLeadingCRLF && len(b) >= 2*(n+1) && b[2*n] == '\r' && b[2*n+1] == '\n' {
		n++
	}
	return n
}

func peekAll(br *bufio.Reader) []byte {
	b, _ := br.Peek(br.Buffered())
	return b
}

var lf, crlf, lflf, lfcrlf = []byte("\n"), []byte("\r\n"), []byte("\n\n"), []byte("\n\r\n")

// noRawMode turns raw mode off (tests compare both paths).
var noRawMode bool
