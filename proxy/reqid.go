package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"log"
	"log/slog"
	"sync/atomic"
)

// Request and connection ids are a per-process random prefix plus a
// counter: unique enough to find a request in the logs, and one small
// allocation instead of a crypto/rand read per request.
var (
	idPrefix [8]byte
	idSeq    atomic.Uint64
)

func init() {
	var b [4]byte
	_, _ = rand.Read(b[:])
	hex.Encode(idPrefix[:], b[:])
}

const hexDigits = "0123456789abcdef"

// newID returns 8 hex digits of process prefix and 12 of sequence.
func newID() string {
	var b [20]byte
	copy(b[:8], idPrefix[:])
	n := idSeq.Add(1)
	for i := 19; i >= 8; i-- {
		b[i] = hexDigits[n&0xf]
		n >>= 4
	}
	return string(b[:])
}

// newStdLogger routes net/http's own error lines (TLS handshake noise,
// malformed requests it answers itself) to the structured log at debug.
func newStdLogger(l *slog.Logger) *log.Logger {
	return slog.NewLogLogger(l.Handler(), slog.LevelDebug)
}
