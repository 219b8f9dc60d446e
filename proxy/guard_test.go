package proxy

import (
	"strings"
	"testing"
)

// scanSplit feeds s to a fresh guard in pieces of size step (0: split once
// at every position, in turn) and reports the first error.
func scanSplit(s string, step int) error {
	g := newH1Guard()
	for len(s) > 0 {
		n := step
		if n > len(s) {
			n = len(s)
		}
		if err := g.scan([]byte(s[:n])); err != nil {
			return err
		}
		s = s[n:]
	}
	return nil
}

var guardValid = map[string]string{
	"get":        "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
	"lf only":    "GET / HTTP/1.1\nHost: a\n\n",
	"cl body":    "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\nx\r\n y: z\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"chunked":    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n5;ext=1\r\n\r\n a\r\n\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"stray crlf": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	// After an upgrade or the h2 preface the bytes are no HTTP/1 heads:
	// nothing in them may be taken for a folded line or a smuggled head.
	"upgrade": "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05\n hi\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
	"h2c":     "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\n \t\r\n\r\n",
	"connect": "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n\n junk\r\n\r\n",
}

var guardInvalid = map[string]string{
	"cl+te":      "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
	"te+cl":      "POST / HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\ncontent-length: 0\r\n\r\n",
	"obs-fold":   "GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n",
	"te late":    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
	"te twice":   "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	"second":     "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
	"in chunked": "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\nX: 1\r\n 2\r\n\r\n",
}

func TestH1Guard(t *testing.T) {
	for name, s := range guardValid {
		for step := 1; step <= len(s); step++ {
			if err := scanSplit(s, step); err != nil {
				t.Errorf("%s (pieces of %d): refused: %v", name, step, err)
				break
			}
		}
	}
	for name, s := range guardInvalid {
		for step := 1; step <= len(s); step++ {
			if err := scanSplit(s, step); err == nil {
				t.Errorf("%s (pieces of %d): accepted", name, step)
				break
			}
		}
	}
}

// FuzzH1Guard: never panics, and how a stream is cut into reads never
// changes the verdict.
func FuzzH1Guard(f *testing.F) {
	for _, s := range guardValid {
		f.Add(s, 7)
	}
	for _, s := range guardInvalid {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, s string, step int) {
		if step <= 0 || step > 1<<16 {
			step = 1
		}
		whole := scanSplit(s, len(s)+1) != nil
		if split := scanSplit(s, step) != nil; split != whole {
			t.Fatalf("verdict depends on the split: whole=%v pieces of %d=%v for %q", whole, step, split, s)
		}
		_ = strings.ToLower
	})
}
