package l4

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// ClientHello is what a passthrough endpoint needs from a TLS ClientHello.
type ClientHello struct {
	// ServerName is the SNI host name, lower-cased, without a trailing
	// dot; empty when the client sent none.
	ServerName string
	// ALPN lists the protocols the client offers, in its order.
	ALPN []string
}

// MaxHelloSize bounds the ClientHello handshake message PeekClientHello
// accepts. Real ones are well under 2 KiB (about 1.8 KiB with a post-quantum
// key share); 64 KiB leaves room for large extension sets while keeping a
// hostile client from making sluice buffer much.
const MaxHelloSize = 64 << 10

// ErrNotTLS means the peer's first bytes are not a TLS handshake record.
var ErrNotTLS = errors.New("l4: not a TLS handshake")

const (
	recordHeaderLen  = 5
	maxRecordPayload = 16384 + 2048 // TLSCiphertext limit; plaintext hellos are smaller
	recordHandshake  = 0x16
	typeClientHello  = 0x01
	extServerName    = 0
	extALPN          = 16
)

// PeekClientHello reads the TLS ClientHello from c without consuming it:
// the returned net.Conn replays every byte read so far, then reads from c.
// Reading is bounded by timeout (0 = none; c's read deadline is cleared
// afterwards) and by MaxHelloSize. Non-TLS input fails with ErrNotTLS as
// soon as its first byte shows it.
//
// The returned conn is never nil, even on error, so that a caller can still
// fall back (answer plain HTTP, log the bytes) or simply close it. It keeps
// c's methods (addresses, deadlines, CloseWrite when c has it); Unwrap
// returns c.
func PeekClientHello(c net.Conn, timeout time.Duration) (*ClientHello, net.Conn, error) {
	r := &recorder{c: c}
	if timeout > 0 {
		if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			return nil, wrap(c, nil), err
		}
	}
	msg, err := readHello(r)
	if timeout > 0 {
		// Clear the deadline even on failure: the caller owns c again.
		_ = c.SetReadDeadline(time.Time{})
	}
	conn := wrap(c, r.buf)
	if err != nil {
		return nil, conn, err
	}
	hello, err := parseClientHello(msg)
	if err != nil {
		return nil, conn, err
	}
	return hello, conn, nil
}

// recorder keeps every byte read from c so they can be replayed.
type recorder struct {
	c   net.Conn
	buf []byte
}

func (r *recorder) readFull(n int) ([]byte, error) {
	start := len(r.buf)
	r.buf = append(r.buf, make([]byte, n)...)
	got, err := io.ReadFull(r.c, r.buf[start:])
	r.buf = r.buf[:start+got]
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || (errors.Is(err, io.EOF) && got == 0 && start > 0) {
			err = fmt.Errorf("l4: connection closed inside the ClientHello: %w", io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	return r.buf[start:], nil
}

// readHello reads handshake records until one complete handshake message
// (which must be a ClientHello) is assembled, and returns its body.
func readHello(r *recorder) ([]byte, error) {
	var msg []byte
	want := -1 // handshake body length once its 4-byte header is known
	for {
		// The first byte alone decides "not TLS", so garbage fails without
		// waiting for a full header that may never come.
		b, err := r.readFull(1)
		if err != nil {
			return nil, err
		}
		if b[0] != recordHandshake {
			if len(msg) == 0 && want < 0 {
				return nil, ErrNotTLS
			}
			return nil, fmt.Errorf("l4: record type %d interleaved in the ClientHello", b[0])
		}
		hdr, err := r.readFull(recordHeaderLen - 1)
		if err != nil {
			return nil, err
		}
		if hdr[0] != 3 {
			return nil, fmt.Errorf("%w: record version %d.%d", ErrNotTLS, hdr[0], hdr[1])
		}
		n := int(hdr[2])<<8 | int(hdr[3])
		if n == 0 || n > maxRecordPayload {
			return nil, fmt.Errorf("l4: bad TLS record length %d", n)
		}
		payload, err := r.readFull(n)
		if err != nil {
			return nil, err
		}
		msg = append(msg, payload...)
		if want < 0 && len(msg) >= 4 {
			if msg[0] != typeClientHello {
				return nil, fmt.Errorf("l4: first handshake message is type %d, not ClientHello", msg[0])
			}
			want = int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
			if want > MaxHelloSize {
				return nil, fmt.Errorf("l4: ClientHello of %d bytes exceeds %d", want, MaxHelloSize)
			}
		}
		if want >= 0 && len(msg)-4 >= want {
			return msg[4 : 4+want], nil
		}
		if len(msg) > MaxHelloSize+4 {
			return nil, fmt.Errorf("l4: ClientHello exceeds %d bytes", MaxHelloSize)
		}
	}
}

// parseClientHello extracts SNI and ALPN from a ClientHello body (RFC 8446
// 4.1.2; the same layout since TLS 1.0).
func parseClientHello(body []byte) (*ClientHello, error) {
	bad := func(what string) (*ClientHello, error) {
		return nil, fmt.Errorf("l4: malformed ClientHello: %s", what)
	}
	s := cryptobyte.String(body)
	var version uint16
	var random []byte
	var sessionID, suites, compression cryptobyte.String
	if !s.ReadUint16(&version) || !s.ReadBytes(&random, 32) ||
		!s.ReadUint8LengthPrefixed(&sessionID) ||
		!s.ReadUint16LengthPrefixed(&suites) ||
		!s.ReadUint8LengthPrefixed(&compression) {
		return bad("truncated header")
	}
	if version < 0x0300 || version > 0x03ff {
		return bad(fmt.Sprintf("version %#04x", version))
	}
	if len(suites) == 0 || len(suites)%2 != 0 {
		return bad("cipher suites")
	}
	h := &ClientHello{}
	if s.Empty() {
		return h, nil // no extensions (SSLv3-style): no SNI, no ALPN
	}
	var exts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&exts) || !s.Empty() {
		return bad("extensions block")
	}
	seen := map[uint16]bool{}
	for !exts.Empty() {
		var typ uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			return bad("extension header")
		}
		if seen[typ] {
			return bad(fmt.Sprintf("duplicate extension %d", typ))
		}
		seen[typ] = true
		switch typ {
		case extServerName:
			name, err := parseSNI(data)
			if err != nil {
				return nil, err
			}
			h.ServerName = name
		case extALPN:
			var list cryptobyte.String
			if !data.ReadUint16LengthPrefixed(&list) || !data.Empty() || list.Empty() {
				return bad("ALPN extension")
			}
			for !list.Empty() {
				var proto cryptobyte.String
				if !list.ReadUint8LengthPrefixed(&proto) || proto.Empty() {
					return bad("ALPN protocol")
				}
				h.ALPN = append(h.ALPN, string(proto))
			}
		}
	}
	return h, nil
}

// parseSNI returns the host_name entry of a server_name extension (RFC
// 6066 section 3), validated the way crypto/tls does on the server side.
func parseSNI(data cryptobyte.String) (string, error) {
	var list cryptobyte.String
	if !data.ReadUint16LengthPrefixed(&list) || !data.Empty() || list.Empty() {
		return "", errors.New("l4: malformed ClientHello: server_name extension")
	}
	name := ""
	for !list.Empty() {
		var typ uint8
		var host cryptobyte.String
		if !list.ReadUint8(&typ) || !list.ReadUint16LengthPrefixed(&host) {
			return "", errors.New("l4: malformed ClientHello: server_name entry")
		}
		if typ != 0 {
			continue
		}
		if name != "" {
			return "", errors.New("l4: malformed ClientHello: several host names")
		}
		if len(host) == 0 || len(host) > 253 {
			return "", errors.New("l4: malformed ClientHello: host name length")
		}
		for _, b := range host {
			if b <= ' ' || b >= 0x7f {
				return "", errors.New("l4: malformed ClientHello: host name contains invalid bytes")
			}
		}
		name = strings.ToLower(strings.TrimSuffix(string(host), "."))
	}
	return name, nil
}
