package main

import (
	"bytes"
	"errors"
	"net"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
)

// evfloor is floor's counterpart with no goroutine per connection: one
// event loop per P (GOMAXPROCS), each a locked OS thread with its own
// epoll set and its own SO_REUSEPORT listening socket, as nginx's workers
// are built. A client connection and its upstream connection live on the
// same loop; the loop reads a whole request head from the client and
// writes it upstream, reads the whole answer (head and Content-Length
// body) and writes it to the client. The bench's row for it shows what a
// Go proxy gets on this machine once the runtime's per-request goroutine
// wake-ups (two per proxied request: the answer, then the next request)
// are gone. Like floor it only serves what the bench sends and is no
// proxy for real use.
func evfloor(listen, upstream string) error {
	la, err := net.ResolveTCPAddr("tcp4", listen)
	if err != nil {
		return err
	}
	ua, err := net.ResolveTCPAddr("tcp4", upstream)
	if err != nil {
		return err
	}
	n := runtime.GOMAXPROCS(0)
	errc := make(chan error, n)
	for i := 0; i < n; i++ {
		lfd, err := evListen(la)
		if err != nil {
			return err
		}
		go func() { errc <- evLoop(lfd, ua) }()
	}
	return <-errc
}

func inet4(a *net.TCPAddr) *syscall.SockaddrInet4 {
	sa := &syscall.SockaddrInet4{Port: a.Port}
	copy(sa.Addr[:], a.IP.To4())
	return sa
}

const soReusePort = 0xf // SO_REUSEPORT on Linux

func evListen(la *net.TCPAddr) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for _, o := range []int{syscall.SO_REUSEADDR, soReusePort} {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, o, 1); err != nil {
			syscall.Close(fd)
			return -1, err
		}
	}
	if err := syscall.Bind(fd, inet4(la)); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	if err := syscall.Listen(fd, 1024); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// evConn is one side of a proxied pair.
type evConn struct {
	fd, peer int
	client   bool
	buf      []byte
	need     int // upstream side: the answer's whole length, once its head is in
}

var errEvBody = errors.New("evfloor: only bodyless requests, answers with a Content-Length")

func evLoop(lfd int, ua *net.TCPAddr) error {
	runtime.LockOSThread()
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, lfd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(lfd)}); err != nil {
		return err
	}
	conns := map[int]*evConn{}
	drop := func(c *evConn) {
		for _, fd := range []int{c.fd, c.peer} {
			syscall.Close(fd)
			delete(conns, fd)
		}
	}
	evs := make([]syscall.EpollEvent, 256)
	for {
		k, err := syscall.EpollWait(ep, evs, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range evs[:k] {
			fd := int(ev.Fd)
			if fd == lfd {
				evAccept(ep, lfd, ua, conns)
				continue
			}
			c := conns[fd]
			if c == nil {
				continue
			}
			if err := c.readable(); err == syscall.EAGAIN {
				continue
			} else if err != nil {
				drop(c)
			}
		}
	}
}

// evAccept takes every pending connection and dials its upstream.
func evAccept(ep, lfd int, ua *net.TCPAddr, conns map[int]*evConn) {
	for {
		cfd, _, err := syscall.Accept4(lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			return
		}
		ufd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err == nil {
			// A blocking connect: the bench connects before it measures.
			if err = syscall.Connect(ufd, inet4(ua)); err == nil {
				err = syscall.SetNonblock(ufd, true)
			}
			if err != nil {
				syscall.Close(ufd)
			}
		}
		if err != nil {
			syscall.Close(cfd)
			continue
		}
		for _, fd := range []int{cfd, ufd} {
			syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
			syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)})
		}
		conns[cfd] = &evConn{fd: cfd, peer: ufd, client: true, buf: make([]byte, 0, 4096)}
		conns[ufd] = &evConn{fd: ufd, peer: cfd, buf: make([]byte, 0, 8192)}
	}
}

var (
	headEnd = []byte("\r\n\r\n")
	hdrTE   = []byte("\ntransfer-encoding:")
	hdrCL   = []byte("\ncontent-length:")
)

// readable reads what the socket holds and forwards a whole request head
// (client side) or a whole answer (upstream side) once it is in.
func (c *evConn) readable() error {
	if len(c.buf) == cap(c.buf) {
		return errEvBody // a head larger than the buffer
	}
	m, err := syscall.Read(c.fd, c.buf[len(c.buf):cap(c.buf)])
	if err != nil {
		return err
	}
	if m == 0 {
		return errors.New("evfloor: closed")
	}
	c.buf = c.buf[:len(c.buf)+m]
	if c.client {
		h := bytes.Index(c.buf, headEnd)
		if h < 0 {
			return nil
		}
		head := bytes.ToLower(c.buf[:h+2])
		if bytes.Contains(head, hdrTE) || bytes.Contains(head, hdrCL) {
			return errEvBody
		}
		if err := evWrite(c.peer, c.buf[:h+4]); err != nil {
			return err
		}
		c.buf = c.buf[:copy(c.buf, c.buf[h+4:])]
		return nil
	}
	if c.need == 0 {
		h := bytes.Index(c.buf, headEnd)
		if h < 0 {
			return nil
		}
		head := bytes.ToLower(c.buf[:h+2])
		i := bytes.Index(head, hdrCL)
		if i < 0 {
			return errEvBody
		}
		v := head[i+len(hdrCL):]
		cl, err := strconv.Atoi(string(bytes.TrimSpace(v[:bytes.IndexByte(v, '\n')])))
		if err != nil || cl < 0 {
			return errEvBody
		}
		c.need = h + 4 + cl
		if cap(c.buf) < c.need {
			c.buf = append(make([]byte, 0, c.need), c.buf...)
		}
	}
	if len(c.buf) < c.need {
		return nil
	}
	if len(c.buf) > c.need {
		return errEvBody // bytes after the answer: nothing was asked
	}
	if err := evWrite(c.peer, c.buf); err != nil {
		return err
	}
	c.buf, c.need = c.buf[:0], 0
	return nil
}

// evWrite writes all of b, waiting in poll(2) when the socket is full.
func evWrite(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		switch {
		case err == syscall.EAGAIN:
			pfd := [1]pollFd{{fd: int32(fd), events: 0x4 /* POLLOUT */}}
			if _, _, e := syscall.Syscall(syscall.SYS_POLL, uintptr(unsafe.Pointer(&pfd[0])), 1, 1000); e != 0 && e != syscall.EINTR {
				return e
			}
			continue
		case err == syscall.EINTR:
			continue
		case err != nil:
			return err
		}
		b = b[n:]
	}
	return nil
}

type pollFd struct {
	fd      int32
	events  int16
	revents int16
}
