package l4

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testcert"
)

// recordingConn captures what a tls.Client writes, to get real ClientHello
// bytes without a server.
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.buf.Write(p)
	c.mu.Unlock()
	return len(p), nil
}

// realHello returns the bytes of a ClientHello crypto/tls sends.
func realHello(t testing.TB, serverName string, alpn ...string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer b.Close()
	rc := &recordingConn{Conn: a}
	c := tls.Client(rc, &tls.Config{ServerName: serverName, NextProtos: alpn, InsecureSkipVerify: true})
	// The handshake writes the hello, then blocks reading: the deadline
	// ends it.
	a.SetDeadline(time.Now().Add(100 * time.Millisecond))
	c.Handshake()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.buf.Len() == 0 {
		t.Fatal("tls.Client wrote nothing")
	}
	return bytes.Clone(rc.buf.Bytes())
}

// serve accepts one TCP connection, peeks and then completes a real TLS
// handshake on the replay conn, echoing one line.
func TestPeekThenRealHandshake(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := testcert.Generate(t, dir, "app.example.com")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type peeked struct {
		hello *ClientHello
		err   error
	}
	got := make(chan peeked, 1)
	go func() {
		raw, err := l.Accept()
		if err != nil {
			got <- peeked{err: err}
			return
		}
		defer raw.Close()
		hello, conn, err := PeekClientHello(raw, 5*time.Second)
		got <- peeked{hello, err}
		if err != nil {
			return
		}
		if _, ok := conn.(interface{ CloseWrite() error }); !ok {
			t.Error("replay conn over TCP lost CloseWrite")
		}
		srv := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
		line := make([]byte, 5)
		if _, err := io.ReadFull(srv, line); err != nil {
			t.Errorf("server read: %v", err)
			return
		}
		srv.Write(line)
	}()

	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{
		ServerName: "App.Example.com",
		NextProtos: []string{"h2", "http/1.1"},
		RootCAs:    testcert.Pool(t, certFile),
	})
	if err != nil {
		t.Fatalf("handshake through the replay conn: %v", err)
	}
	defer c.Close()
	p := <-got
	if p.err != nil {
		t.Fatal(p.err)
	}
	if p.hello.ServerName != "app.example.com" {
		t.Errorf("ServerName = %q", p.hello.ServerName)
	}
	if strings.Join(p.hello.ALPN, ",") != "h2,http/1.1" {
		t.Errorf("ALPN = %q", p.hello.ALPN)
	}
	if c.ConnectionState().NegotiatedProtocol != "h2" {
		t.Errorf("negotiated %q", c.ConnectionState().NegotiatedProtocol)
	}
	c.Write([]byte("hello"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo %q %v", buf, err)
	}
}

// peekBytes feeds data to PeekClientHello through a real TCP connection,
// writing it in chunks of size chunk (0 = all at once) and then closing.
func peekBytes(t *testing.T, data []byte, chunk int, timeout time.Duration) (*ClientHello, []byte, error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		if chunk == 0 {
			chunk = len(data)
		}
		for len(data) > 0 {
			n := min(chunk, len(data))
			if _, err := c.Write(data[:n]); err != nil {
				return
			}
			data = data[n:]
		}
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c) // stay open until the server closes
	}()
	raw, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	hello, conn, perr := PeekClientHello(raw, timeout)
	if conn == nil {
		t.Fatal("nil conn returned")
	}
	replay, _ := io.ReadAll(conn) // the client half-closed: ends at EOF
	return hello, replay, perr
}

// reframe splits a single-record ClientHello into records of at most n
// payload bytes each, as a client may legally do.
func reframe(hello []byte, n int) []byte {
	payload := hello[5:]
	var out []byte
	for len(payload) > 0 {
		k := min(n, len(payload))
		out = append(out, 0x16, hello[1], hello[2], byte(k>>8), byte(k))
		out = append(out, payload[:k]...)
		payload = payload[k:]
	}
	return out
}

func TestPeekFragmented(t *testing.T) {
	hello := realHello(t, "frag.example.com", "h2")
	for _, tc := range []struct {
		name   string
		data   []byte
		chunk  int
		wantSz int
	}{
		{"one write", hello, 0, len(hello)},
		{"byte by byte", hello, 1, len(hello)},
		{"records of 3", reframe(hello, 3), 7, 0},
		{"records of 100", reframe(hello, 100), 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, replay, err := peekBytes(t, tc.data, tc.chunk, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if h.ServerName != "frag.example.com" || len(h.ALPN) != 1 || h.ALPN[0] != "h2" {
				t.Fatalf("hello = %+v", h)
			}
			if !bytes.Equal(replay, tc.data) {
				t.Fatalf("replay differs from input (%d vs %d bytes)", len(replay), len(tc.data))
			}
		})
	}
}

func TestPeekNoSNI(t *testing.T) {
	// crypto/tls sends no SNI for an IP address.
	h, _, err := peekBytes(t, realHello(t, "127.0.0.1"), 0, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if h.ServerName != "" || len(h.ALPN) != 0 {
		t.Fatalf("hello = %+v", h)
	}
}

func TestPeekErrors(t *testing.T) {
	hello := realHello(t, "x.example.com")
	bigRecord := []byte{0x16, 3, 1, 0xff, 0xff}
	notHello := append([]byte{0x16, 3, 1, 0, 4}, 2, 0, 0, 0)
	hugeHello := append([]byte{0x16, 3, 1, 0, 4}, 1, 0xff, 0xff, 0xff)
	badVersion := append([]byte{0x16, 2, 0, 0, 4}, hello[5:9]...)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "not a TLS handshake"},
		{"ssh", []byte("SSH-2.0-OpenSSH_9.6\r\n"), "not a TLS handshake"},
		{"empty", nil, "EOF"},
		{"truncated", hello[:len(hello)/2], "closed inside the ClientHello"},
		{"header only", hello[:3], "closed inside the ClientHello"},
		{"record too big", bigRecord, "bad TLS record length"},
		{"not a ClientHello", notHello, "not ClientHello"},
		{"huge hello", hugeHello, "exceeds"},
		{"record version", badVersion, "record version"},
		{"alert in the middle", append(reframe(hello, 50)[:55], 0x15, 3, 3, 0, 2, 2, 40), "interleaved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, replay, err := peekBytes(t, tc.data, 0, 5*time.Second)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if !bytes.Equal(replay, tc.data) {
				t.Fatalf("replay %q, want the input %q", replay, tc.data)
			}
		})
	}
}

func TestPeekGarbageFailsFast(t *testing.T) {
	// One byte of garbage, and the client keeps the connection open: the
	// first byte alone must decide, long before the timeout.
	a, b := net.Pipe()
	defer a.Close()
	go b.Write([]byte{'G'})
	start := time.Now()
	_, _, err := PeekClientHello(a, time.Minute)
	if !errors.Is(err, ErrNotTLS) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Fatal("waited for the timeout")
	}
}

func TestPeekTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(realHello(t, "slow.example.com")[:20]) // then silence
	raw, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_, conn, err := PeekClientHello(raw, 50*time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	// The deadline is cleared: the caller can still read what comes.
	go c.Write([]byte("more"))
	buf := make([]byte, 24)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf[20:]) != "more" {
		t.Fatalf("read after timeout: %q %v", buf, err)
	}
}

func TestParseClientHelloMalformed(t *testing.T) {
	body := realHello(t, "a.example.com", "h2")[9:]
	for i := range body {
		// Every truncation is an error or a valid subset, never a panic.
		parseClientHello(body[:i])
	}
	if _, err := parseClientHello(body[:10]); err == nil {
		t.Fatal("truncated hello accepted")
	}
}

func FuzzPeekClientHello(f *testing.F) {
	f.Add(realHello(f, "fuzz.example.com", "h2", "http/1.1"))
	f.Add(reframe(realHello(f, "b.example.com"), 7))
	f.Add(realHello(f, "10.0.0.1"))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0x16, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &bytesConn{r: bytes.NewReader(data)}
		hello, conn, err := PeekClientHello(c, 0)
		if conn == nil {
			t.Fatal("nil conn")
		}
		if err == nil && hello == nil {
			t.Fatal("nil hello without error")
		}
		// Replay invariant: the returned conn yields exactly the input.
		got, _ := io.ReadAll(conn)
		if !bytes.Equal(got, data) {
			t.Fatalf("replay %x, want %x", got, data)
		}
	})
}

// bytesConn is an in-memory net.Conn for the fuzzer: no goroutines, no
// sockets.
type bytesConn struct {
	net.Conn
	r *bytes.Reader
}

func (c *bytesConn) Read(p []byte) (int, error)      { return c.r.Read(p) }
func (c *bytesConn) SetReadDeadline(time.Time) error { return nil }
func (c *bytesConn) Close() error                    { return nil }

// FuzzParseClientHello reaches the extension parser directly, which the
// record-level fuzzer rarely gets to with consistent lengths.
func FuzzParseClientHello(f *testing.F) {
	f.Add(realHello(f, "fuzz.example.com", "h2", "http/1.1")[9:])
	f.Add(realHello(f, "10.0.0.1")[9:])
	f.Fuzz(func(t *testing.T, body []byte) {
		h, err := parseClientHello(body)
		if err == nil && h == nil {
			t.Fatal("nil hello without error")
		}
		if err == nil && strings.ContainsAny(h.ServerName, " \x00\x7f") {
			t.Fatalf("invalid server name accepted: %q", h.ServerName)
		}
	})
}
