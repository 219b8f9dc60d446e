package l4

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ErrIdleTimeout is returned by Pipe when neither side sent anything for
// the idle duration.
var ErrIdleTimeout = errors.New("l4: idle timeout")

const bufSize = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Pipe copies a→b and b→a until both directions are done, then closes both
// connections and returns the byte counts.
//
// When one side reaches EOF, Pipe half-closes the other side's write half
// (CloseWrite, for *net.TCPConn, *net.UnixConn, *tls.Conn and the conns
// PeekClientHello returns) and keeps copying the opposite direction, so
// protocols that shut down one way still get their answer. A conn without
// CloseWrite is closed fully instead, which also ends the opposite
// direction.
//
// idle > 0 ends the pipe with ErrIdleTimeout after that long without data in
// either direction. Cancelling ctx closes both conns and returns ctx.Err().
// Any other read or write error closes both and is returned; a clean EOF on
// both sides returns nil.
func Pipe(ctx context.Context, a, b net.Conn, idle time.Duration) (aToB, bToA int64, err error) {
	p := &pipe{a: a, b: b, idle: idle}
	p.last.Store(time.Now().UnixNano())
	stop := context.AfterFunc(ctx, func() { p.fail(ctx.Err()) })
	defer stop()

	var wg sync.WaitGroup
	wg.Go(func() { bToA = p.copy(a, b) })
	aToB = p.copy(b, a)
	wg.Wait()
	p.closeBoth()

	p.mu.Lock()
	err = p.err
	p.mu.Unlock()
	return aToB, bToA, err
}

type pipe struct {
	a, b net.Conn
	idle time.Duration
	last atomic.Int64 // UnixNano of the last successful read, either side (idle > 0 only)

	mu     sync.Mutex
	err    error // first failure; reported to the caller
	closed bool
}

// fail records the first error and closes both conns, which unblocks the
// other direction's Read and Write.
func (p *pipe) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
	p.closeBoth()
}

func (p *pipe) closeBoth() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.a.Close()
	p.b.Close()
}

func (p *pipe) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// copy moves src→dst until EOF or failure and returns the bytes written.
func (p *pipe) copy(dst, src net.Conn) int64 {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var n int64
	if p.idle > 0 {
		_ = src.SetReadDeadline(time.Now().Add(p.idle))
	}
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			if p.idle > 0 {
				now := time.Now()
				p.last.Store(now.UnixNano())
				// A peer that stops reading must not pin the pipe forever.
				_ = dst.SetWriteDeadline(now.Add(p.idle))
			}
			nw, werr := dst.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				if errors.Is(werr, os.ErrDeadlineExceeded) {
					werr = ErrIdleTimeout
				}
				p.failUnlessClosed(werr)
				return n
			}
		}
		if rerr == nil {
			continue
		}
		if errors.Is(rerr, io.EOF) {
			p.halfClose(dst)
			return n
		}
		if p.idle > 0 && errors.Is(rerr, os.ErrDeadlineExceeded) && !p.isClosed() {
			// The other direction may have been busy: the idle timeout is
			// per pipe, not per direction.
			deadline := time.Unix(0, p.last.Load()).Add(p.idle)
			if time.Now().Before(deadline) {
				_ = src.SetReadDeadline(deadline)
				continue
			}
			p.fail(ErrIdleTimeout)
			return n
		}
		p.failUnlessClosed(rerr)
		return n
	}
}

// failUnlessClosed records err unless the conns were already closed by the
// pipe (ctx cancel, idle timeout, the other side's failure): then err is
// only the echo of that close (net.ErrClosed, io.ErrClosedPipe…).
func (p *pipe) failUnlessClosed(err error) {
	if p.isClosed() {
		return
	}
	p.fail(err)
}

func (p *pipe) halfClose(dst net.Conn) {
	if cw, ok := dst.(closeWriter); ok {
		if err := cw.CloseWrite(); err == nil || p.isClosed() {
			return
		}
	}
	// No half-close: the peer only learns the stream ended when the
	// connection closes, so close everything.
	p.closeBoth()
}
