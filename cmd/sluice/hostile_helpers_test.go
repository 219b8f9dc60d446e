package main

// Helpers of the hostile-input battery (hostile_*_test.go): a sluice with
// short limits in front of a backend that records every request it parses,
// raw client connections that write exact bytes, and readings of the
// process' goroutines, descriptors and memory for the leak checks.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// edge is a running sluice with one catch-all endpoint and an admin port.
type edge struct {
	p     *proc
	addr  string // the HTTP listener
	admin string
	dir   string
	cfg   string // the config file's content
}

// startEdge runs `sluice serve` in front of upstream (a URL or host:port)
// with the given YAML lines under `limits:` (indented by the caller's
// two spaces, e.g. "  read_header_timeout: 1s\n").
func startEdge(t *testing.T, upstream, limits string) *edge {
	t.Helper()
	dir := t.TempDir()
	if !strings.Contains(upstream, "://") {
		upstream = "http://" + upstream
	}
	var lim string
	if limits != "" {
		lim = "limits:\n" + limits
	}
	cfg := fmt.Sprintf(`
admin: 127.0.0.1:0
log: {format: json}
%s
endpoints:
  - url: http://:80
    listen: 127.0.0.1:0
    upstream: %s
`, lim, upstream)
	p := start(t, "serve", "-c", writeConfig(t, dir, cfg))
	p.waitLog(0, "started", msg("sluice started"))
	return &edge{p: p, addr: p.addr("127.0.0.1:0"), admin: p.adminAddr(), dir: dir, cfg: cfg}
}

// addEndpoint adds an endpoint for url on the same listener (answering for
// its host) and waits for the reload.
func (e *edge) addEndpoint(t *testing.T, url, upstream string) {
	t.Helper()
	e.cfg += fmt.Sprintf("  - url: %s\n    listen: 127.0.0.1:0\n    upstream: http://%s\n", url, upstream)
	n := e.p.nLines()
	writeConfig(t, e.dir, e.cfg)
	e.p.waitLog(n, "config reloaded", msg("config reloaded"))
}

// recReq is one request as the recording backend parsed it.
type recReq struct {
	Method, Path, Host string
	TE                 []string
	CL                 int64
	Header             http.Header
	Body               string
	BodyErr            error
}

// recBackend is a net/http upstream that records every request it parses.
// A smuggled request would show up here as an extra entry.
type recBackend struct {
	ln  net.Listener
	srv *http.Server

	mu   sync.Mutex
	reqs []recReq
}

func newRecBackend(t *testing.T) *recBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &recBackend{ln: ln}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, berr := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		b.mu.Lock()
		b.reqs = append(b.reqs, recReq{Method: r.Method, Path: r.URL.Path, Host: r.Host,
			TE: r.TransferEncoding, CL: r.ContentLength, Header: r.Header.Clone(),
			Body: string(body), BodyErr: berr})
		b.mu.Unlock()
		if berr != nil {
			return
		}
		w.Header().Set("X-Backend-Path", r.URL.Path)
		if r.URL.Path == "/stream" {
			w.(http.Flusher).Flush() // no Content-Length: chunked
		}
		fmt.Fprintf(w, "ok %s %d", r.URL.Path, len(body))
	})}
	go func() { _ = b.srv.Serve(ln) }()
	t.Cleanup(func() { _ = b.srv.Close() })
	return b
}

func (b *recBackend) addr() string { return b.ln.Addr().String() }

// mark returns a cursor into the recorded requests.
func (b *recBackend) mark() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.reqs)
}

// since returns the requests recorded after cursor i.
func (b *recBackend) since(i int) []recReq {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]recReq(nil), b.reqs[i:]...)
}

// closeWait bounds the wait for a connection the server should close right
// after its answer; generous for a loaded machine, short enough that a
// failing case does not stall the battery.
const closeWait = 5 * time.Second

// rawConn is a client connection that writes exact bytes.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// response reads one response (body included) within waitTimeout. method
// is the request's, for HEAD's bodyless answer.
func (r *rawConn) response(method string) (*http.Response, string, error) {
	r.c.SetReadDeadline(time.Now().Add(waitTimeout))
	res, err := http.ReadResponse(r.br, &http.Request{Method: method})
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b), err
}

// closedByPeer reports whether the peer closes the connection (EOF or
// reset) within waitTimeout; extra are bytes that arrived instead.
// Only call it where the connection is expected to close: an open one
// costs closeWait.
func (r *rawConn) closedByPeer() (closed bool, extra string) {
	r.c.SetReadDeadline(time.Now().Add(closeWait))
	b, err := io.ReadAll(r.br)
	if err == nil || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) {
		return true, string(b)
	}
	return false, string(b)
}

// rest reads what the peer sends until it closes (or waitTimeout).
func (r *rawConn) rest() string {
	r.c.SetReadDeadline(time.Now().Add(waitTimeout))
	b, _ := io.ReadAll(r.br)
	return string(b)
}

// sluiceStats is a reading of the sluice process.
type sluiceStats struct {
	goroutines int
	fds        int
	rssKB      int
}

var goroutinesRE = regexp.MustCompile(`(?m)^go_goroutines (\d+)`)

// stats reads goroutines from /metrics, descriptors from /proc/PID/fd and
// resident memory from /proc/PID/status.
func (e *edge) stats(t *testing.T) sluiceStats {
	t.Helper()
	var s sluiceStats
	pid := e.p.cmd.Process.Pid
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("reading sluice fds: %v", err)
	}
	s.fds = len(fds)
	s.rssKB = rssKB(t, pid)
	_, body, _ := get(t, e.admin, "", "/metrics")
	m := goroutinesRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no go_goroutines in /metrics")
	}
	s.goroutines, _ = strconv.Atoi(m[1])
	return s
}

func rssKB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading sluice status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// settle polls until goroutines and fds are back within slack of base, or
// the bounded wait ends; it returns the last reading.
func (e *edge) settle(t *testing.T, base sluiceStats, gSlack, fdSlack int) (sluiceStats, bool) {
	t.Helper()
	var s sluiceStats
	for i := 0; i < 100; i++ {
		s = e.stats(t)
		if s.goroutines <= base.goroutines+gSlack && s.fds <= base.fds+fdSlack {
			return s, true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s, false
}

// goroutineDump is the admin's goroutine profile, for failure messages.
func (e *edge) goroutineDump(t *testing.T) string {
	t.Helper()
	_, body, _ := get(t, e.admin, "", "/debug/pprof/goroutine?debug=1")
	if len(body) > 6000 {
		body = body[:6000] + "\n..."
	}
	return body
}

// fdList names sluice's descriptors (sockets, files), for failure messages.
func (e *edge) fdList() string {
	dir := fmt.Sprintf("/proc/%d/fd", e.p.cmd.Process.Pid)
	ents, _ := os.ReadDir(dir)
	var b bytes.Buffer
	for _, ent := range ents {
		l, _ := os.Readlink(filepath.Join(dir, ent.Name()))
		fmt.Fprintf(&b, "%s -> %s\n", ent.Name(), l)
	}
	return b.String()
}

// serveRaw runs serve on every connection accepted on a new loopback
// listener until the test ends; cleanup closes the listener and the open
// connections and waits for the handlers.
func serveRaw(t *testing.T, serve func(c net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, serve)
}

// serveOn is serveRaw on a listener of the caller's (a unix socket).
func serveOn(t *testing.T, ln net.Listener, serve func(c net.Conn)) net.Listener {
	var wg sync.WaitGroup
	var open sync.Map
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			open.Store(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer open.Delete(c)
				defer c.Close()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		open.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return ln
}

// trickle writes msg to c one byte per interval until done, stop closes or
// a write fails (slowloris).
func trickle(c net.Conn, msg string, every time.Duration, stop <-chan struct{}) {
	for i := 0; i < len(msg); i++ {
		if _, err := c.Write([]byte{msg[i]}); err != nil {
			return
		}
		select {
		case <-stop:
			return
		case <-time.After(every):
		}
	}
}

// socketQueued sums the send and receive queues of every established
// loopback TCP socket with one end on one of the addrs' ports: the bytes
// the kernel holds between the processes of a streaming test. What a test
// sees in flight less this is what the processes themselves hold. The
// kernel's share alone can be tens of MiB (receive buffers autotune up to
// net.ipv4.tcp_rmem's maximum, 32 MiB on our machines), so a bound on
// user-space buffering must not include it.
func socketQueued(t *testing.T, addrs ...string) int64 {
	t.Helper()
	ports := map[uint64]bool{}
	for _, a := range addrs {
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			t.Fatal(err)
		}
		ports[n] = true
	}
	var sum int64
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// sl local_address rem_address st tx_queue:rx_queue ...
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 5 || fs[3] != "01" { // ESTABLISHED
				continue
			}
			port := func(hostPort string) uint64 {
				i := strings.LastIndexByte(hostPort, ':')
				n, _ := strconv.ParseUint(hostPort[i+1:], 16, 16)
				return n
			}
			if !ports[port(fs[1])] && !ports[port(fs[2])] {
				continue
			}
			tx, rx, ok := strings.Cut(fs[4], ":")
			if !ok {
				continue
			}
			txn, _ := strconv.ParseInt(tx, 16, 64)
			rxn, _ := strconv.ParseInt(rx, 16, 64)
			sum += txn + rxn
		}
	}
	return sum
}
