package actions

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

func TestNegotiate(t *testing.T) {
	all := []string{"gzip", "deflate", "br", "zstd", "compress"}
	tests := []struct {
		accept  string
		allowed []string
		want    string
	}{
		{"", all, ""},
		{"gzip", all, "gzip"},
		{"br", all, "br"},
		{"gzip, br", all, "gzip"},                     // tie: config order
		{"gzip, br", []string{"br", "gzip"}, "br"},    // tie: config order
		{"gzip;q=1.0, br; q=0.5, *;q=0", all, "gzip"}, // ngrok's doc example
		{"gzip;q=0.5, br;q=0.9", all, "br"},
		{"GZIP;Q=0.8, zstd;q=0.9", all, "zstd"},
		{"*", all, "gzip"},
		{"*;q=0.5, gzip;q=0", all, "deflate"},
		{"identity", all, ""},
		{"compress", all, ""}, // accepted in config, never produced
		{"br", []string{"gzip"}, ""},
		{"gzip;q=0", all, ""},
		{"gzip;q=abc", all, ""},
		{"x-gzip", all, "gzip"},
		{" , ;q=1, deflate ", all, "deflate"},
	}
	for _, tt := range tests {
		var h []string
		if tt.accept != "" {
			h = []string{tt.accept}
		}
		if got := negotiate(h, tt.allowed); got != tt.want {
			t.Errorf("negotiate(%q, %v) = %q, want %q", tt.accept, tt.allowed, got, tt.want)
		}
	}
}

func decoder(t *testing.T, coding string, r io.Reader) io.Reader {
	t.Helper()
	switch coding {
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		return zr
	case "deflate":
		zr, err := zlib.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		return zr
	case "br":
		return brotli.NewReader(r)
	case "zstd":
		zr, err := zstd.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		return zr
	}
	t.Fatalf("no decoder for %s", coding)
	return nil
}

func TestCompressBodyRoundTrip(t *testing.T) {
	body := strings.Repeat("sluice compresses this line again and again\n", 5000)
	for _, c := range []string{"gzip", "deflate", "br", "zstd"} {
		t.Run(c, func(t *testing.T) {
			// Run twice so the second run uses a pooled encoder.
			for i := 0; i < 2; i++ {
				cb := newCompressBody(io.NopCloser(strings.NewReader(body)), c)
				var buf bytes.Buffer
				if _, err := io.Copy(&buf, cb); err != nil {
					t.Fatal(err)
				}
				cb.Close()
				if buf.Len() >= len(body)/10 {
					t.Errorf("compressed %d → %d bytes: too little", len(body), buf.Len())
				}
				got, err := io.ReadAll(decoder(t, c, &buf))
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != body {
					t.Fatalf("round trip mismatch: %d bytes back", len(got))
				}
			}
		})
	}
}

// TestCompressBodyStreams checks that a chunk the upstream sent is readable
// by the client before the upstream sends more (server-sent events).
func TestCompressBodyStreams(t *testing.T) {
	for _, c := range []string{"gzip", "deflate", "br", "zstd"} {
		t.Run(c, func(t *testing.T) {
			pr, pw := io.Pipe()
			cb := newCompressBody(pr, c)
			defer cb.Close()
			// A pipe between the compressed stream and the decoder: the
			// decoder must yield the event while the upstream is paused.
			zr, zw := io.Pipe()
			go func() {
				_, err := io.Copy(zw, cb)
				zw.CloseWithError(err)
			}()
			go pw.Write([]byte("data: first event\n\n"))
			dec := decoder(t, c, zr)
			got := make([]byte, len("data: first event\n\n"))
			if _, err := io.ReadFull(dec, got); err != nil {
				t.Fatal(err)
			}
			if string(got) != "data: first event\n\n" {
				t.Fatalf("got %q", got)
			}
			pw.Close()
		})
	}
}

type errReader struct{ closed bool }

func (e *errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
func (e *errReader) Close() error             { e.closed = true; return nil }

func TestCompressBodySourceError(t *testing.T) {
	src := &errReader{}
	cb := newCompressBody(src, "gzip")
	if _, err := io.ReadAll(cb); err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v, want the upstream's error", err)
	}
	cb.Close()
	cb.Close()
	if !src.closed {
		t.Fatal("source not closed")
	}
}

// TestCompressBodyCloseDuringRead closes the body from another goroutine
// while a Read waits on the upstream, as the proxy does when the client
// goes away; run with -race.
func TestCompressBodyCloseDuringRead(t *testing.T) {
	for i := 0; i < 20; i++ {
		pr, pw := io.Pipe()
		cb := newCompressBody(pr, "gzip")
		done := make(chan error, 1)
		go func() {
			_, err := io.ReadAll(cb)
			done <- err
		}()
		pw.Write([]byte("partial"))
		cb.Close()
		if err := <-done; err == nil {
			t.Fatal("read after close succeeded")
		}
		cb.Close()
	}
}
