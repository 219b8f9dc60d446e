package l4

import "net"

// replayConn serves the bytes PeekClientHello consumed before reading on
// from the underlying conn.
type replayConn struct {
	net.Conn
	buf []byte
}

// replayConnCW is a replayConn whose underlying conn can half-close, so the
// type assertion for CloseWrite tells the truth.
type replayConnCW struct{ *replayConn }

type closeWriter interface{ CloseWrite() error }

func wrap(c net.Conn, buf []byte) net.Conn {
	rc := &replayConn{Conn: c, buf: buf}
	if _, ok := c.(closeWriter); ok {
		return replayConnCW{rc}
	}
	return rc
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		if len(c.buf) == 0 {
			c.buf = nil // let the peeked bytes be collected
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// Unwrap returns the underlying connection. Reading from it directly skips
// any bytes not yet replayed.
func (c *replayConn) Unwrap() net.Conn { return c.Conn }

// CloseWrite half-closes the underlying connection.
func (c replayConnCW) CloseWrite() error { return c.Conn.(closeWriter).CloseWrite() }
