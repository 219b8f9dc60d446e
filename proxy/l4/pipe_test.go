package l4

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

type pipeResult struct {
	aToB, bToA int64
	err        error
}

// listen starts a loopback TCP server running handle for every connection.
func listen(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return l.Addr().String()
}

// proxied returns a client conn whose traffic is piped by Pipe to a fresh
// connection to upstream, and the channel Pipe's result arrives on.
func proxied(t *testing.T, ctx context.Context, upstream string, idle time.Duration) (*net.TCPConn, chan pipeResult) {
	t.Helper()
	res := make(chan pipeResult, 1)
	front := listen(t, func(a net.Conn) {
		b, err := net.Dial("tcp", upstream)
		if err != nil {
			a.Close()
			res <- pipeResult{err: err}
			return
		}
		x, y, err := Pipe(ctx, a, b, idle)
		res <- pipeResult{x, y, err}
	})
	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn), res
}

func wait(t *testing.T, res chan pipeResult) pipeResult {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Pipe did not return")
		return pipeResult{}
	}
}

func echo(c net.Conn) {
	defer c.Close()
	io.Copy(c, c)
}

func TestPipeEcho(t *testing.T) {
	c, res := proxied(t, context.Background(), listen(t, echo), 0)
	msg := bytes.Repeat([]byte("sluice "), 50_000) // > several 32 KiB buffers
	go func() {
		c.Write(msg)
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo returned %d bytes, want %d", len(got), len(msg))
	}
	r := wait(t, res)
	if r.err != nil || r.aToB != int64(len(msg)) || r.bToA != int64(len(msg)) {
		t.Fatalf("Pipe = %d, %d, %v", r.aToB, r.bToA, r.err)
	}
}

// The upstream answers only after it has read everything: the client's
// half-close must reach it while the answer still flows back.
func TestPipeHalfClose(t *testing.T) {
	up := listen(t, func(c net.Conn) {
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		fmt.Fprintf(c, "read %d bytes", n)
	})
	c, res := proxied(t, context.Background(), up, time.Minute)
	c.Write([]byte("hello, upstream"))
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "read 15 bytes" {
		t.Fatalf("got %q", got)
	}
	if r := wait(t, res); r.err != nil || r.aToB != 15 || r.bToA != 13 {
		t.Fatalf("Pipe = %+v", r)
	}
}

// The upstream closes first (server-speaks-first protocols): the client
// sees EOF but may still send its last words.
func TestPipeHalfCloseFromUpstream(t *testing.T) {
	got := make(chan string, 1)
	up := listen(t, func(c net.Conn) {
		defer c.Close()
		c.Write([]byte("bye"))
		c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	c, res := proxied(t, context.Background(), up, 0)
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "bye" {
		t.Fatalf("read %q, %v", b, err)
	}
	c.Write([]byte("last words"))
	c.CloseWrite()
	if s := <-got; s != "last words" {
		t.Fatalf("upstream got %q", s)
	}
	if r := wait(t, res); r.err != nil {
		t.Fatal(r.err)
	}
}

func TestPipeIdleTimeout(t *testing.T) {
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	up := listen(t, func(c net.Conn) {
		defer c.Close()
		<-hold
	})
	c, res := proxied(t, context.Background(), up, 50*time.Millisecond)
	r := wait(t, res)
	if !errors.Is(r.err, ErrIdleTimeout) {
		t.Fatalf("err = %v, want ErrIdleTimeout", r.err)
	}
	// The client connection was closed by Pipe.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("client read after idle timeout: %v", err)
	}
}

// Traffic in one direction only keeps the whole pipe alive: the idle timer
// is per pipe, not per direction.
func TestPipeIdleResetByActivity(t *testing.T) {
	up := listen(t, func(c net.Conn) {
		defer c.Close()
		io.Copy(io.Discard, c) // never answers
	})
	idle := 400 * time.Millisecond
	c, res := proxied(t, context.Background(), up, idle)
	tick := time.NewTicker(idle / 8)
	defer tick.Stop()
	for range 24 { // three idle periods of one-way traffic
		<-tick.C
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-res:
			t.Fatalf("pipe ended during activity: %+v", r)
		default:
		}
	}
	c.CloseWrite()
	if r := wait(t, res); r.err != nil || r.aToB != 24*4 {
		t.Fatalf("Pipe = %+v", r)
	}
}

func TestPipeContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c, res := proxied(t, ctx, listen(t, echo), 0)
	c.Write([]byte("x"))
	io.ReadFull(c, make([]byte, 1))
	cancel()
	r := wait(t, res)
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", r.err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("client conn still open after cancel")
	}
}

func TestPipeAlreadyCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a1, a2 := net.Pipe()
	b1, b2 := net.Pipe()
	defer a2.Close()
	defer b2.Close()
	if _, _, err := Pipe(ctx, a1, b1, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// net.Pipe conns cannot half-close: EOF on one side ends the whole pipe.
func TestPipeWithoutCloseWrite(t *testing.T) {
	a1, a2 := net.Pipe()
	b1, b2 := net.Pipe()
	res := make(chan pipeResult, 1)
	go func() {
		x, y, err := Pipe(context.Background(), a1, b1, 0)
		res <- pipeResult{x, y, err}
	}()
	go io.Copy(b2, b2) // echo upstream
	a2.Write([]byte("abc"))
	buf := make([]byte, 3)
	if _, err := io.ReadFull(a2, buf); err != nil || string(buf) != "abc" {
		t.Fatalf("%q %v", buf, err)
	}
	a2.Close()
	if r := wait(t, res); r.err != nil || r.aToB != 3 || r.bToA != 3 {
		t.Fatalf("Pipe = %+v", r)
	}
	if _, err := b2.Write([]byte("x")); err == nil {
		t.Fatal("upstream side still open")
	}
}

// An upstream reset is reported, and ends the pipe.
func TestPipeUpstreamReset(t *testing.T) {
	up := listen(t, func(c net.Conn) {
		io.ReadFull(c, make([]byte, 1))
		c.(*net.TCPConn).SetLinger(0) // RST instead of FIN
		c.Close()
	})
	c, res := proxied(t, context.Background(), up, 0)
	c.Write([]byte("x"))
	r := wait(t, res)
	if r.err == nil || !strings.Contains(r.err.Error(), "reset") {
		t.Fatalf("err = %v, want connection reset", r.err)
	}
}

func TestPipeNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	up := listen(t, echo)
	for i := range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		c, res := proxied(t, ctx, up, time.Minute)
		c.Write([]byte("hi"))
		io.ReadFull(c, make([]byte, 2))
		if i%2 == 0 {
			cancel()
		} else {
			c.CloseWrite()
		}
		wait(t, res)
		c.Close()
		cancel()
	}
	// Listeners' accept loops belong to the test; allow for them and poll
	// until handler goroutines have exited.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before+21 {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkPipe measures one-way throughput through Pipe over loopback TCP
// (client → Pipe → discarding upstream).
func BenchmarkPipe(b *testing.B) {
	for _, idle := range []time.Duration{0, time.Minute} {
		b.Run(fmt.Sprintf("idle=%v", idle), func(b *testing.B) {
			sink, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer sink.Close()
			go func() {
				c, err := sink.Accept()
				if err == nil {
					io.Copy(io.Discard, c)
					c.Close()
				}
			}()
			front, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer front.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				a, err := front.Accept()
				if err != nil {
					return
				}
				up, err := net.Dial("tcp", sink.Addr().String())
				if err != nil {
					return
				}
				Pipe(context.Background(), a, up, idle)
			}()
			c, err := net.Dial("tcp", front.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			chunk := make([]byte, 64<<10)
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, c)
			<-done
			c.Close()
		})
	}
}
