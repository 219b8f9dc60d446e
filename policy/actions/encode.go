package actions

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// This file is the machinery of compress-response: Accept-Encoding
// negotiation and a streaming, pull-based compressing body. It has no
// goroutine per response: the proxy's reads drive the compression.

// encoder is the part of gzip/zlib/brotli/zstd writers the body needs.
type encoder interface {
	io.Writer
	Flush() error
	Close() error
	Reset(w io.Writer)
}

// codings are the content codings sluice can produce, by token. Levels are
// chosen for on-the-fly compression: fast, with most of the ratio.
var codings = map[string]*sync.Pool{
	"gzip": {New: func() any {
		w, _ := gzip.NewWriterLevel(io.Discard, 5)
		return encoder(w)
	}},
	"deflate": {New: func() any {
		w, _ := zlib.NewWriterLevel(io.Discard, 5)
		return encoder(w)
	}},
	"br": {New: func() any {
		return encoder(brotli.NewWriterLevel(io.Discard, 4))
	}},
	"zstd": {New: func() any {
		w, _ := zstd.NewWriter(io.Discard,
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithLowerEncoderMem(true),
			zstd.WithWindowSize(1<<20))
		return encoder(w) // Close leaves it reusable, so it pools too
	}},
}

// negotiate picks the content coding for an Accept-Encoding header value
// among the allowed ones (in preference order), following RFC 9110 §12.5.3:
// the highest q-value wins, `*` covers codings not listed, q=0 excludes.
// Ties go to the earlier entry of allowed. It returns "" when nothing fits.
func negotiate(acceptEncoding []string, allowed []string) string {
	q := map[string]float64{}
	star := -1.0
	for _, line := range acceptEncoding {
		for _, part := range strings.Split(line, ",") {
			name, params, _ := strings.Cut(part, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			w := 1.0
			for _, p := range strings.Split(params, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
					if err != nil || f < 0 || f > 1 {
						f = 0 // malformed weight: treat as not acceptable
					}
					w = f
				}
			}
			if name == "x-gzip" {
				name = "gzip" // RFC 9110 §8.4.1.3: equivalent
			}
			if name == "*" {
				star = w
				continue
			}
			if old, seen := q[name]; !seen || w > old {
				q[name] = w
			}
		}
	}
	best, bestQ := "", 0.0
	for _, c := range allowed {
		if codings[c] == nil {
			continue // e.g. "compress": accepted in config, never produced
		}
		w, ok := q[c]
		if !ok {
			w = star
		}
		if w > bestQ {
			best, bestQ = c, w
		}
	}
	return best
}

// compressBody is an io.ReadCloser that compresses src as it is read. Each
// read from src goes through the encoder; when src returned less than a full
// buffer (the upstream paused: SSE, long polling, chunked progress) the
// encoder is flushed so the client sees those bytes now rather than when
// more data arrives.
//
// Close may come from another goroutine while a Read is blocked on src (a
// client that went away): the mutex is not held across src.Read, and the
// encoder goes back to its pool only once no Read can touch it.
type compressBody struct {
	src  io.ReadCloser
	pool *sync.Pool
	in   []byte

	mu      sync.Mutex
	enc     encoder
	out     bytes.Buffer
	srcErr  error // sticky error from src (io.EOF once drained)
	reading bool
	closed  bool
}

const compressChunk = 32 << 10

// chunkPool holds the read buffers, which otherwise are most of what a
// compressed response allocates.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, compressChunk); return &b }}

func newCompressBody(src io.ReadCloser, coding string) *compressBody {
	b := &compressBody{src: src, pool: codings[coding], in: *chunkPool.Get().(*[]byte)}
	b.enc = b.pool.Get().(encoder)
	b.enc.Reset(&b.out)
	return b
}

func (b *compressBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.out.Len() == 0 {
		if b.closed {
			return 0, io.ErrClosedPipe
		}
		if b.srcErr != nil {
			return 0, b.srcErr
		}
		if b.reading {
			return 0, errors.New("compress-response: concurrent Read")
		}
		b.reading = true
		b.mu.Unlock()
		n, err := b.src.Read(b.in)
		b.mu.Lock()
		b.reading = false
		if b.closed {
			b.release()
			return 0, io.ErrClosedPipe
		}
		b.consume(n, err)
	}
	return b.out.Read(p)
}

// consume feeds what src returned to the encoder. Called with mu held.
func (b *compressBody) consume(n int, err error) {
	if n > 0 {
		if _, werr := b.enc.Write(b.in[:n]); werr != nil {
			b.srcErr = werr
			b.release()
			return
		}
	}
	switch {
	case err == io.EOF:
		b.srcErr = io.EOF
		if cerr := b.enc.Close(); cerr != nil {
			b.srcErr = cerr
		}
		b.release()
	case err != nil:
		// Hand the upstream's error on unchanged: the proxy decides what a
		// truncated body means for the client.
		b.srcErr = err
		b.release()
	case n > 0 && n < len(b.in):
		if ferr := b.enc.Flush(); ferr != nil {
			b.srcErr = ferr
			b.release()
		}
	}
}

// release returns the encoder and the read buffer to their pools once they
// will not be used again. Called with mu held and no Read on src pending.
func (b *compressBody) release() {
	if b.enc != nil {
		b.enc.Reset(io.Discard)
		b.pool.Put(b.enc)
		b.enc = nil
	}
	if b.in != nil {
		buf := b.in // the pool keeps a pointer: not to our field
		chunkPool.Put(&buf)
		b.in = nil
	}
}

func (b *compressBody) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	if !b.reading {
		b.release()
	}
	b.mu.Unlock()
	return b.src.Close() // unblocks a Read waiting on src
}
