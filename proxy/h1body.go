package proxy

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
)

// h1body is a request body of the sluice HTTP/1.x engine: Content-Length
// or chunked, read straight from the connection's bufio.Reader.
//
// One per request with a body, heap-allocated, because an upload goroutine
// may still hold it after the handler returned: the mutex and the closed
// flag keep such a late reader off the next request's bytes (it gets
// http.ErrBodyReadAfterClose), as net/http's body does.
type h1body struct {
	mu      sync.Mutex
	c       *h1conn
	br      *bufio.Reader
	chunked bool
	rem     int64 // bytes left: of the body (fixed) or of the chunk
	crlf    bool  // chunked: the CRLF after chunk data is due
	eof     bool
	err     error // sticky framing or read error
	closed  bool
	limit   int64       // most body bytes read, <0: unlimited
	total   int64       // body bytes read so far
	cont    bool        // "100 Continue" still to send on the first read
	trailer http.Header // where declared trailers go (nil: dropped)
}

// Bounds of what a chunked body may carry besides its data.
const (
	maxTrailerBytes  = 16 << 10
	maxTrailerFields = 64
	// maxDiscard is how much unread body is skipped to keep a connection
	// after the handler returned; more closes the connection.
	maxDiscard = 256 << 10
)

var (
	errChunkSize    = errors.New("invalid chunk size line")
	errChunkData    = errors.New("chunk data not followed by CRLF")
	errTrailer      = errors.New("invalid trailer section")
	errTrailerLarge = errors.New("trailer section too large")
)

func (b *h1body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.cont {
		b.cont = false
		b.c.writeContinue()
	}
	return b.read(p)
}

// Close marks the body closed for the handler; the engine discards what is
// left after the handler returned.
func (b *h1body) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// read is Read without the lock and the closed check.
func (b *h1body) read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.eof {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if b.br.Buffered() == 0 {
		b.c.armBodyRead()
	}
	if b.chunked {
		if err := b.nextChunk(); err != nil {
			if err != io.EOF {
				b.err = err
			}
			return 0, err
		}
	}
	if int64(len(p)) > b.rem {
		p = p[:b.rem]
	}
	n, err := b.br.Read(p)
	b.rem -= int64(n)
	b.total += int64(n)
	if b.limit >= 0 && b.total > b.limit {
		b.err = errBodyTooLarge
		return n, b.err
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		b.err = err
		return n, err
	}
	if b.rem == 0 {
		if !b.chunked {
			b.eof = true
			return n, io.EOF
		}
		b.crlf = true
	}
	return n, nil
}

// nextChunk positions the reader at chunk data; io.EOF after the last
// chunk and its trailers.
func (b *h1body) nextChunk() error {
	if b.rem > 0 {
		return nil
	}
	if b.crlf {
		c1, err1 := b.br.ReadByte()
		c2, err2 := b.br.ReadByte()
		if err1 != nil || err2 != nil {
			return io.ErrUnexpectedEOF
		}
		if c1 != '\r' || c2 != '\n' {
			return errChunkData
		}
		b.crlf = false
	}
	line, err := b.br.ReadSlice('\n')
	if err != nil {
		if err == bufio.ErrBufferFull {
			return errChunkSize // extensions are bounded by the buffer
		}
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	size, ok := parseChunkLine(line)
	if !ok {
		return errChunkSize
	}
	if size == 0 {
		if err := b.readTrailers(); err != nil {
			return err
		}
		b.eof = true
		return io.EOF
	}
	b.rem = size
	return nil
}

// parseChunkLine parses "hex-size [BWS ; ext] CRLF" with an overflow check.
func parseChunkLine(line []byte) (int64, bool) {
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return 0, false
	}
	line = line[:len(line)-2]
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto ext
		}
		if n > (1<<63-1)>>4 {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
ext:
	if i == 0 {
		return 0, false
	}
	rest := line[i:]
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] != ';' {
		return 0, false
	}
	for _, c := range rest {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return 0, false
		}
	}
	return n, true
}

// readTrailers reads the trailer section after the last chunk, bounded in
// bytes and fields, into b.trailer when the request declared trailers.
func (b *h1body) readTrailers() error {
	total, fields := 0, 0
	var kb [64]byte
	for {
		line, err := b.br.ReadSlice('\n')
		total += len(line)
		if err == bufio.ErrBufferFull || total > maxTrailerBytes {
			return errTrailerLarge
		}
		if err != nil {
			return io.ErrUnexpectedEOF
		}
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return errTrailer
		}
		line = line[:len(line)-2]
		if len(line) == 0 {
			return nil
		}
		if fields++; fields > maxTrailerFields {
			return errTrailerLarge
		}
		c := strings.IndexByte(string(line), ':')
		if c <= 0 {
			return errTrailer
		}
		for _, ch := range line[:c] {
			if !tokenByte[ch] {
				return errTrailer
			}
		}
		val := trimOWS(string(line[c+1:]))
		for j := 0; j < len(val); j++ {
			if ch := val[j]; (ch < ' ' && ch != '\t') || ch == 0x7f {
				return errTrailer
			}
		}
		if b.trailer == nil {
			continue
		}
		key := canonKey(string(line[:c]), &kb)
		if badTrailer(key) {
			continue // framing, routing and proxy fields have no place in trailers
		}
		b.trailer[key] = append(b.trailer[key], val)
	}
}

// stop ends the body without reading the rest: the connection is closing.
func (b *h1body) stop() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
}

// finish closes the body after the handler returned and reports whether
// the connection can carry another request: the rest of the body is
// discarded if it is small, and never when the client still waits for
// "100 Continue" (it may not send the body at all).

func (b *h1body) finish() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.err != nil {
		return false
	}
	if b.eof {
		return true
	}
	if b.cont {
		return false
	}
	var buf [4096]byte
	for n := 0; n <= maxDiscard; {
		m, err := b.read(buf[:])
		n += m
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}
