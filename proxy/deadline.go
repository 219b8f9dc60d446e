package proxy

import (
	"net"
	"sync/atomic"
	"time"
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
// Whoever sets another deadline on the socket calls reset first.
type lazyDeadline struct {
	at atomic.Int64 // the armed deadline in Unix nanoseconds, 0: not known
}

func (l *lazyDeadline) arm(c net.Conn, d time.Duration) {
	now := time.Now()
	want := now.Add(d)
	if a := l.at.Load(); a != 0 && a >= want.UnixNano() {
		return
	}
	slack := min(d/64, time.Second)
	t := want.Add(slack)
	c.SetReadDeadline(t)
	l.at.Store(t.UnixNano())
}

func (l *lazyDeadline) reset() { l.at.Store(0) }
