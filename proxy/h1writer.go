package proxy

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// h1writer is the engine's http.ResponseWriter (also http.Flusher and
// http.Hijacker). The head goes straight into the connection's
// bufio.Writer from the handler's header map (no clone); the body is
// Content-Length framed when the handler set one, else chunked (HTTP/1.1)
// or delimited by closing the connection (HTTP/1.0). One per connection,
// reset for every request.
type h1writer struct {
	c         *h1conn
	hdr       http.Header
	status    int
	wrote     bool // the final status is set
	committed bool // the head is in the buffer
	chunked   bool
	bodyless  bool
	cl        int64 // declared length, -1: none
	n         int64 // body bytes written
	err       error // sticky write error
	hijacked  bool
	idv       [1]string // the X-Request-Id field's value list (see writeResponse)
	checked   bool      // every field of hdr is known valid (see writeResponse)
}

func (w *h1writer) reset() {
	clear(w.hdr)
	w.status, w.wrote, w.committed, w.chunked, w.bodyless = 0, false, false, false, false
	w.cl, w.n, w.err, w.hijacked, w.checked = -1, 0, nil, false, false
}

// retract takes back an answer whose head has not gone out: nothing of it
// reached the client, so another one (an error) can take its place.
func (w *h1writer) retract() bool {
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	if w.committed || w.hijacked {
		return false
	}
	w.reset()
	return true
}

func (w *h1writer) Header() http.Header { return w.hdr }

func (w *h1writer) WriteHeader(code int) {
	if w.wrote || w.hijacked {
		return
	}
	if code < 100 || code > 999 {
		code = http.StatusInternalServerError
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// Informational answers go out at once and leave the header map
		// for the final answer, as with net/http.
		w.c.wmu.Lock()
		if !w.committed {
			bw := w.c.bw
			w.statusLine(code)
			for k, vv := range w.hdr {
				for _, v := range vv {
					if validField(k, v) {
						writeHeader(bw, k, v)
					}
				}
			}
			bw.WriteString("\r\n")
			if err := bw.Flush(); err != nil {
				w.err = err
			}
		}
		w.c.wmu.Unlock()
		return
	}
	w.wrote, w.status = true, code
}

func (w *h1writer) statusLine(code int) {
	bw := w.c.bw
	if w.c.h.minor == 0 {
		bw.WriteString("HTTP/1.0 ")
	} else {
		bw.WriteString("HTTP/1.1 ")
	}
	if code < len(statusTexts) && statusTexts[code] != "" {
		bw.WriteString(statusTexts[code])
		return
	}
	var b [8]byte
	bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
	bw.WriteString(" status code\r\n")
}

// statusTexts holds "200 OK\r\n" and the like, built once.
var statusTexts [600]string

func init() {
	for c := 100; c < len(statusTexts); c++ {
		if t := http.StatusText(c); t != "" {
			statusTexts[c] = strconv.Itoa(c) + " " + t + "\r\n"
		}
	}
}

// commit writes the status line and header. first is the first body
// bytes (for Content-Type sniffing); final means the handler is done, so
// a body never written has length 0.
func (w *h1writer) commit(first []byte, final bool) {
	c := w.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	w.committed = true
	bw := c.bw
	code := w.status
	h := w.hdr
	w.bodyless = c.h.method == http.MethodHead || code == http.StatusNoContent ||
		code == http.StatusNotModified || code < 200
	if cl := h["Content-Length"]; len(cl) > 0 {
		if n, ok := parseLength(cl[0]); ok && len(cl) == 1 {
			w.cl = n
		} else {
			delete(h, "Content-Length")
		}
	}
	if code == http.StatusNoContent || code < 200 {
		delete(h, "Content-Length")
		w.cl = -1
	}
	closeConn := c.h.close || c.shutting()
	if !closeConn {
		for _, v := range h["Connection"] {
			if hasTokenFold(v, "close") {
				closeConn = true
			}
		}
	}
	if !w.bodyless && w.cl < 0 {
		switch {
		case final && len(h["Trailer"]) == 0 && !hasTrailerKeys(h):
			w.cl = 0
		case c.h.minor == 0:
			closeConn = true
		default:
			w.chunked = true
		}
	}
	if closeConn {
		c.closeAfter = true
	}
	w.statusLine(code)
	if _, ok := h["Date"]; !ok {
		bw.Write(dateLine())
	}
	if !w.bodyless && len(first) > 0 {
		if _, ok := h["Content-Type"]; !ok && len(h["Content-Encoding"]) == 0 {
			writeHeader(bw, "Content-Type", http.DetectContentType(first))
		}
	}
	for k, vv := range h {
		switch k {
		case "Transfer-Encoding", "Connection", "Content-Length":
			continue
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		for _, v := range vv {
			if w.checked || validField(k, v) {
				writeHeader(bw, k, v)
			}
		}
	}
	if w.cl >= 0 && (!w.bodyless || h["Content-Length"] != nil) {
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), w.cl, 10))
		bw.WriteString("\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case closeConn:
		bw.WriteString("Connection: close\r\n")
	case c.h.minor == 0:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	bw.WriteString("\r\n")
}

func hasTrailerKeys(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

func (w *h1writer) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(p, false)
	}
	if w.bodyless {
		return 0, http.ErrBodyNotAllowed
	}
	if w.err != nil {
		return 0, w.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	var lenErr error
	if w.cl >= 0 && w.n+int64(len(p)) > w.cl {
		p = p[:w.cl-w.n]
		lenErr = http.ErrContentLength
	}
	bw := w.c.bw
	if w.chunked {
		var b [20]byte
		bw.Write(strconv.AppendInt(b[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	w.n += int64(n)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.err = err
		return n, err
	}
	return n, lenErr
}

func (w *h1writer) WriteString(s string) (int, error) {
	// Rarely used by the proxy; the conversion copies.
	return w.Write([]byte(s))
}

func (w *h1writer) Flush() { w.FlushError() }

func (w *h1writer) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(nil, false)
	}
	if w.err != nil {
		return w.err
	}
	if err := w.c.bw.Flush(); err != nil {
		w.err = err
	}
	return w.err
}

// finish completes the response after the handler returned.
func (w *h1writer) finish() error {
	if w.hijacked {
		return nil
	}
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(nil, true)
	}
	if w.err != nil {
		return w.err
	}
	bw := w.c.bw
	if w.chunked {
		bw.WriteString("0\r\n")
		for k, vv := range w.hdr {
			name := k
			if strings.HasPrefix(k, http.TrailerPrefix) {
				name = k[len(http.TrailerPrefix):]
			} else if !declaredTrailer(w.hdr["Trailer"], k) {
				continue
			}
			for _, v := range vv {
				if validField(name, v) {
					writeHeader(bw, name, v)
				}
			}
		}
		bw.WriteString("\r\n")
	} else if w.cl >= 0 && w.n < w.cl && !w.bodyless {
		// A short body: the client can only tell by the connection closing.
		w.c.closeAfter = true
	}
	return bw.Flush()
}

func declaredTrailer(decl []string, k string) bool {
	for _, d := range decl {
		for d != "" {
			var t string
			t, d, _ = strings.Cut(d, ",")
			if http.CanonicalHeaderKey(trimOWS(t)) == k {
				return true
			}
		}
	}
	return false
}

// Hijack hands the connection and its buffers to the handler (WebSocket
// and other upgrades, h2c); the engine then forgets the connection.
func (w *h1writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	c := w.c
	if c.src.raw {
		// serveRaw holds the socket's read side: it never serves a request
		// that may switch protocols (an Upgrade), so this is a bug.
		return nil, nil, errors.New("proxy: hijack of a connection in raw mode")
	}
	if w.committed {
		if err := c.bw.Flush(); err != nil {
			return nil, nil, err
		}
	}
	w.hijacked = true
	c.hijacked = true
	c.l.h1.remove(c)
	if g := c.ci.gauge; g != nil {
		g.Dec()
	}
	c.haltBody(time.Time{}) // also forgets the lazy idle deadline
	c.nc.SetDeadline(time.Time{})
	return c.nc, bufio.NewReadWriter(c.br, c.bw), nil
}

// dateLine returns "Date: <now>\r\n", rebuilt at most once a second.
func dateLine() []byte {
	now := time.Now().Unix()
	if d := dateCache.Load(); d != nil && d.sec == now {
		return d.line
	}
	d := &cachedDate{sec: now}
	d.line = append([]byte("Date: "), time.Unix(now, 0).UTC().AppendFormat(nil, http.TimeFormat)...)
	d.line = append(d.line, '\r', '\n')
	dateCache.Store(d)
	return d.line
}

type cachedDate struct {
	sec  int64
	line []byte
}

var dateCache atomic.Pointer[cachedDate]
