//go:build unix

package proxy

import (
	"crypto/tls"
	"net"
	"syscall"
)

// connAlive reports whether an idle pooled connection still looks usable:
// no EOF, error or unexpected data is waiting on the socket. It costs one
// non-blocking recv per reuse (nginx gets the same from an event on its
// idle upstream connections; we have no goroutine per idle connection).
// Plain sockets are probed inside the request's own raw read instead
// (pconn.flushThenWait); this serves the others.
func connAlive(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	alive := true
	rc.Read(func(fd uintptr) bool {
		alive = !strayBytes(fd)
		return true
	})
	return alive
}

// strayBytes says whether an idle connection's socket holds anything: an
// EOF, an error, or bytes nobody asked for (a late or extra answer, which
// must never become the next request's answer). One non-blocking
// MSG_PEEK recv.
func strayBytes(fd uintptr) bool {
	var buf [1]byte
	_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
}
