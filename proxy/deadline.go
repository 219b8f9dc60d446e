package proxy

import (
	"net"
	"sync/atomic"
	"time"
	_ "unsafe" // go:linkname
)

// lazyDeadline re-arms a read deadline that is set again and again with
// the same timeout (a client's idle timeout, an upstream's response
// header timeout) only about once a second instead of on every request,
// as nginx does with its lazy timers. Each arm otherwise costs a clock
// read and a runtime timer update.
//
// The deadline is armed a little late, at now+d plus a slack of d/64 (at
// most a second), and kept while it still lies at or beyond now+d: the
// timeout fires between d and d+slack after the last arm, never early.
// Every other read deadline on the socket goes through set.
type lazyDeadline struct {
	at atomic.Int64 // the armed deadline on the monotonic clock, 0: not known
}

func (l *lazyDeadline) arm(c net.Conn, d time.Duration) {
	want := nanotime() + int64(d)
	if a := l.at.Load(); a != 0 && a >= want {
		return
	}
	slack := min(d/64, time.Second)
	c.SetReadDeadline(time.Now().Add(d + slack))
	l.at.Store(want + int64(slack))
}

// nanotime is the runtime's monotonic clock: one clock read where
// time.Now makes two (wall and monotonic). Only lazyDeadline's checks use
// it; the deadlines themselves are wall-clock times.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

func (l *lazyDeadline) reset() { l.at.Store(0) }

// set sets a read deadline other than the lazy one's, which is then no
// longer known to be armed.
func (l *lazyDeadline) set(c net.Conn, t time.Time) {
	l.reset()
	c.SetReadDeadline(t)
}
