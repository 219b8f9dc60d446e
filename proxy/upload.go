package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// bodyWriter uploads a request body concurrently with reading the answer.
type bodyWriter struct {
	state atomic.Int32 // 0 not started, 1 reading the body, 2 cancelled
	done  chan struct{}
	err   error
}

// cancel stops a writer that has not read any of the body yet; true means
// the body is untouched and the request may be retried.
func (w *bodyWriter) cancel() bool {
	if w.state.CompareAndSwap(0, 2) {
		return true
	}
	return false
}

func (w *bodyWriter) finished() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

func (w *bodyWriter) ok() bool { return w.finished() && w.err == nil }

func (w *bodyWriter) run(pc *pconn, body io.Reader, cl int64, trailer http.Header) {
	if !w.state.CompareAndSwap(0, 1) {
		w.err = errors.New("cancelled")
		close(w.done)
		return
	}
	// An upstream that takes nothing more of the upload for
	// upstream_stall_timeout fails it (nginx's proxy_send_timeout): the write
	// deadline moves on with every piece read from the client.
	sr := &stallReader{r: body, c: pc.c, d: pc.p.limits.UpstreamStallTimeout}
	err := writeBody(pc.bw, sr, cl, trailer)
	if err == nil {
		err = pc.bw.Flush()
	}
	pc.c.SetWriteDeadline(time.Time{})
	w.err = err
	close(w.done)
	if err != nil && isClientBodyErr(err) {
		// The upstream got a truncated request: unblock the reader.
		pc.c.Close()
	}
}

// stallReader reads an upload's body and, before each piece, moves the
// upstream connection's write deadline to d from now (at most about once a
// second: the deadline lies a second further out, so it never fires
// early), so that only a write that makes no progress for d fails.
type stallReader struct {
	r  io.Reader
	c  net.Conn
	d  time.Duration
	at int64 // nanotime() of the last move
}

func (s *stallReader) Read(p []byte) (int, error) {
	if stallDue(s.d, &s.at) {
		s.c.SetWriteDeadline(time.Now().Add(s.d + time.Second))
	}
	return s.r.Read(p)
}

func writeBody(bw *bufio.Writer, body io.Reader, cl int64, trailer http.Header) error {
	bp, pool := getBuf(cl)
	defer pool.Put(bp)
	buf := *bp
	if cl > 0 {
		var n int64
		for n < cl {
			want := int64(len(buf))
			if cl-n < want {
				want = cl - n
			}
			nr, err := body.Read(buf[:want])
			if nr > 0 {
				if _, werr := bw.Write(buf[:nr]); werr != nil {
					return werr
				}
				n += int64(nr)
			}
			if err == io.EOF {
				if n < cl {
					return &clientBodyError{io.ErrUnexpectedEOF}
				}
				break
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	var hb [20]byte
	for {
		nr, err := body.Read(buf)
		if nr > 0 {
			bw.Write(strconv.AppendInt(hb[:0], int64(nr), 16))
			bw.WriteString("\r\n")
			bw.Write(buf[:nr])
			bw.WriteString("\r\n")
			// Forward each piece as it arrives: streaming uploads.
			if werr := bw.Flush(); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	bw.WriteString("0\r\n")
	for k, vv := range trailer {
		if badTrailer(k) || strings.IndexByte(k, '_') >= 0 { // as request headers (dropUnderscored)
			continue
		}
		for _, v := range vv {
			if validField(k, v) {
				writeHeader(bw, k, v)
			}
		}
	}
	bw.WriteString("\r\n")
	return nil
}
