package proxy

import (
	"bytes"
	"errors"
)

// h1guard watches the HTTP/1.x byte stream a client sends, below net/http,
// and fails the read that completes a request head net/http would accept
// but a careful proxy should not: one with both Content-Length and
// Transfer-Encoding (a request-smuggling attempt; net/http would quietly
// let chunked win), with obs-fold line continuations, or (where net/http
// answers 501) with chunked before another transfer coding. net/http answers
// a failed read of a request head with "400 Bad Request" and closes the
// connection, which is the answer RFC 9112 §6.3 and §5.2 allow.
//
// It follows the framing (Content-Length bodies, chunked bodies and their
// trailers) to know where the next head starts, and switches itself off
// where the stream stops being HTTP/1.x requests it understands: the h2c
// preface, Upgrade and CONNECT requests, framing it cannot follow (net/http
// then rejects the request itself).
type h1guard struct {
	st     guardState
	line   []byte // partial line carried across reads
	remain int64  // bytes left in a body or chunk
	first  bool   // the request line was seen
	cl     int64  // Content-Length, -1 if none
	te     bool   // Transfer-Encoding seen
	teOK   bool   // ... and it is exactly "chunked"
	teLast bool   // the last coding seen is chunked
	teLate bool   // a coding follows chunked
	off    bool   // upgrade/connect: stop after this head
}

type guardState uint8

const (
	gHead      guardState = iota // request line and header lines
	gBody                        // Content-Length body
	gChunkSize                   // chunk-size line
	gChunkData                   // chunk data
	gChunkEnd                    // CRLF after chunk data
	gTrailer                     // trailer lines after the last chunk
	gOff                         // not watching any more
)

var (
	errSmuggle = errors.New("request has both Content-Length and Transfer-Encoding")
	errObsFold = errors.New("obsolete line folding in request header")
	errTEFinal = errors.New("chunked is not the final transfer-encoding")
)

// maxGuardLine bounds a carried partial line; longer lines are left to
// net/http's own limits (431) and end the watch.
const maxGuardLine = 128 << 10

func newH1Guard() *h1guard { return &h1guard{cl: -1} }

// scan consumes bytes the client sent; a non-nil error rejects the request.
func (g *h1guard) scan(b []byte) error {
	for len(b) > 0 {
		switch g.st {
		case gOff:
			return nil
		case gBody, gChunkData:
			n := int64(len(b))
			if n > g.remain {
				n = g.remain
			}
			g.remain -= n
			b = b[n:]
			if g.remain == 0 {
				if g.st == gBody {
					g.reset()
				} else {
					g.st = gChunkEnd
				}
			}
		default:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				if len(g.line)+len(b) > maxGuardLine {
					g.st, g.line = gOff, nil
					return nil
				}
				g.line = append(g.line, b...)
				return nil
			}
			line := b[:i]
			if len(g.line) > 0 {
				g.line = append(g.line, line...)
				line = g.line
			}
			b = b[i+1:]
			line = bytes.TrimSuffix(line, []byte{'\r'})
			err := g.onLine(line)
			g.line = g.line[:0]
			if err != nil {
				g.st = gOff
				return err
			}
		}
	}
	return nil
}

// onLine handles one complete line (without its line ending).
func (g *h1guard) onLine(line []byte) error {
	switch g.st {
	case gChunkSize:
		size, ok := chunkSize(line)
		switch {
		case !ok:
			g.st = gOff // net/http answers 400 itself
		case size == 0:
			g.st = gTrailer
		default:
			g.st, g.remain = gChunkData, size
		}
		return nil
	case gChunkEnd:
		g.st = gChunkSize
		return nil
	case gTrailer:
		if len(line) == 0 {
			g.reset()
		}
		return nil
	}
	// gHead
	if !g.first {
		if len(line) == 0 {
			return nil // stray CRLF between requests
		}
		g.first = true
		if bytes.HasPrefix(line, []byte("PRI * HTTP/2.0")) || bytes.HasPrefix(line, []byte("CONNECT ")) {
			g.st = gOff
		}
		return nil
	}
	if len(line) == 0 {
		return g.endOfHead()
	}
	if line[0] == ' ' || line[0] == '\t' {
		return errObsFold
	}
	c := bytes.IndexByte(line, ':')
	if c <= 0 {
		return nil // net/http rejects it
	}
	name, val := line[:c], bytes.TrimSpace(line[c+1:])
	switch {
	case asciiEqualFold(name, "content-length"):
		n, ok := parseLength(string(val))
		if !ok {
			g.st = gOff
			return nil
		}
		g.cl = n
	case asciiEqualFold(name, "transfer-encoding"):
		g.te = true
		g.teOK = asciiEqualFold(val, "chunked")
		// net/http answers 501 to any list; chunked before another coding
		// is a 400 (RFC 9112 §6.3), as in the engine's parser.
		for _, el := range bytes.Split(val, []byte{','}) {
			g.teLate = g.teLate || g.teLast
			g.teLast = asciiEqualFold(bytes.Trim(el, " \t"), "chunked")
		}
	case asciiEqualFold(name, "upgrade"):
		g.off = true
	}
	return nil
}

func (g *h1guard) endOfHead() error {
	switch {
	case g.cl >= 0 && g.te:
		return errSmuggle
	case g.teLate:
		return errTEFinal
	case g.off:
		g.st = gOff
	case g.te && g.teOK:
		g.st = gChunkSize
	case g.te:
		g.st = gOff // net/http answers 501
	case g.cl > 0:
		g.st, g.remain = gBody, g.cl
	default:
		g.reset()
	}
	return nil
}

// reset prepares for the next request head.
func (g *h1guard) reset() {
	g.st, g.first, g.cl, g.te, g.teOK, g.off = gHead, false, -1, false, false, false
	g.teLast, g.teLate = false, false
}

func chunkSize(line []byte) (int64, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | int64(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | int64(c-'a'+10)
		case 'A' <= c && c <= 'F':
			n = n<<4 | int64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return n, true
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
