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
	var buf [1]byte
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
		case err != nil, n == 0:
			alive = false // closed or reset by the upstream
		default:
			alive = false // bytes nobody asked for: not a clean connection
		}
		return true
	})
	return alive
}
