package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the sluice binary built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "sluice")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	args := []string{"build", "-o", binary, "-ldflags", "-X main.version=v0.0.0-e2e"}
	if os.Getenv("SLUICE_E2E_RACE") != "" {
		// The binary itself under the race detector (slower; run it before
		// changing the runner's locking).
		args = append(args, "-race")
	}
	build := exec.Command(goBin, append(args, ".")...)
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building sluice: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// waitTimeout bounds every wait for the process; generous because the
// machine is shared, never a performance assertion.
const waitTimeout = 20 * time.Second

// proc is a running sluice. Its stderr (JSON logs) is parsed line by line.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout bytes.Buffer

	mu      sync.Mutex
	lines   []map[string]any
	raw     []string
	changed chan struct{} // closed and replaced when a line arrives
	done    chan struct{} // closed when the process exited
	exit    int
}

// start runs sluice with args (JSON logs are the caller's choice of flag).
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startIn(t, "", args...)
}

// startIn is start with a working directory.
func startIn(t *testing.T, dir string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, changed: make(chan struct{}), done: make(chan struct{})}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout = &syncWriter{w: &p.stdout, mu: &p.mu}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go p.read(stderr)
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if strings.Contains(p.logText(), "WARNING: DATA RACE") {
			t.Errorf("data race in sluice (SLUICE_E2E_RACE build)")
		}
		if t.Failed() {
			t.Logf("sluice %s stderr:\n%s", strings.Join(args, " "), p.logText())
		}
	})
	return p
}

type syncWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func (p *proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			m = map[string]any{"msg": line, "raw": true}
		}
		p.mu.Lock()
		p.lines = append(p.lines, m)
		p.raw = append(p.raw, line)
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	err := p.cmd.Wait()
	p.mu.Lock()
	p.exit = 0
	if ee, ok := err.(*exec.ExitError); ok {
		p.exit = ee.ExitCode()
	} else if err != nil {
		p.exit = -1
	}
	p.mu.Unlock()
	close(p.done)
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.raw, "\n")
}

// waitLog waits for a log line at index >= from that satisfies pred and
// returns it and its index.
func (p *proc) waitLog(from int, what string, pred func(map[string]any) bool) (map[string]any, int) {
	p.t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		m, i, next, changed := p.find(from, pred)
		if i >= 0 {
			return m, i
		}
		from = next
		select {
		case <-changed:
		case <-p.done:
			// Every line was read before done closed: one last look.
			if m, i, _, _ := p.find(from, pred); i >= 0 {
				return m, i
			}
			p.t.Fatalf("sluice exited (code %d) before logging %s", p.exitCode(), what)
		case <-deadline.C:
			p.t.Fatalf("timed out waiting for log: %s", what)
		}
	}
}

// find looks for a matching line from index from; i is -1 when there is
// none yet, next is where to look again once changed is closed.
func (p *proc) find(from int, pred func(map[string]any) bool) (m map[string]any, i, next int, changed <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := from; i < len(p.lines); i++ {
		if pred(p.lines[i]) {
			return p.lines[i], i, i + 1, p.changed
		}
	}
	return nil, -1, len(p.lines), p.changed
}

// msg matches a log line by its message.
func msg(m string) func(map[string]any) bool {
	return func(l map[string]any) bool { return l["msg"] == m }
}

// nLines is the number of log lines so far (a cursor for waitLog).
func (p *proc) nLines() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// count counts log lines matching pred.
func (p *proc) count(pred func(map[string]any) bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if pred(l) {
			n++
		}
	}
	return n
}

// addr waits for the "listening" line of a listen key and returns the bound
// address.
func (p *proc) addr(listen string) string {
	p.t.Helper()
	l, _ := p.waitLog(0, "listening on "+listen, func(l map[string]any) bool {
		return l["msg"] == "listening" && l["listen"] == listen
	})
	return l["addr"].(string)
}

// adminAddr waits for the admin listener's address.
func (p *proc) adminAddr() string {
	p.t.Helper()
	l, _ := p.waitLog(0, "admin listening", msg("admin listening"))
	return l["addr"].(string)
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		p.t.Fatal("sluice did not exit")
	}
	return p.exitCode()
}

func (p *proc) exitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exit
}

func (p *proc) stdoutText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

// runSluice runs a short command to completion: exit code, stdout, stderr.
func runSluice(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// client never reuses connections across tests and never follows redirects.
func newClient() *http.Client {
	return &http.Client{
		Timeout:       waitTimeout,
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// get sends a GET to addr with an optional Host and returns status, body
// and headers.
func get(t *testing.T, addr, host, path string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	res, err := newClient().Do(req)
	if err != nil {
		t.Fatalf("GET %s%s (Host %s): %v", addr, path, host, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

// backend is a real upstream on a loopback port. It answers with its name
// and the request path, echoes X-* request headers back as X-Seen-*, and
// /slow streams a first chunk, waits for release, then ends.
type backend struct {
	name    string
	srv     *http.Server
	ln      net.Listener
	release chan struct{}
	started chan struct{} // one value per /slow request that began
	once    sync.Once
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, ln: ln, release: make(chan struct{}), started: make(chan struct{}, 16)}
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		_, _ = io.WriteString(w, "first-"+name+"\n")
		w.(http.Flusher).Flush()
		b.started <- struct{}{}
		select {
		case <-b.release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "last-"+name+"\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		for k, v := range r.Header {
			if strings.HasPrefix(k, "X-") {
				w.Header()["X-Seen-"+strings.TrimPrefix(k, "X-")] = v
			}
		}
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	})
	b.srv = &http.Server{Handler: mux}
	go func() { _ = b.srv.Serve(ln) }()
	t.Cleanup(func() {
		b.unblock()
		_ = b.srv.Close()
	})
	return b
}

func (b *backend) addr() string { return b.ln.Addr().String() }

func (b *backend) port() string {
	_, p, _ := net.SplitHostPort(b.addr())
	return p
}

func (b *backend) unblock() { b.once.Do(func() { close(b.release) }) }

// slowRequest starts GET /slow through addr and returns once the first
// chunk arrived; finish reads the rest.
type slowRequest struct {
	res  *http.Response
	body *bufio.Reader
}

func startSlow(t *testing.T, b *backend, addr, host string) *slowRequest {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/slow", nil)
	if host != "" {
		req.Host = host
	}
	res, err := newClient().Do(req)
	if err != nil {
		t.Fatalf("slow request: %v", err)
	}
	s := &slowRequest{res: res, body: bufio.NewReader(res.Body)}
	first, err := s.body.ReadString('\n')
	if err != nil || first != "first-"+b.name+"\n" {
		t.Fatalf("slow request first chunk: %q, %v", first, err)
	}
	select {
	case <-b.started:
	case <-time.After(waitTimeout):
		t.Fatal("backend did not see the slow request")
	}
	return s
}

func (s *slowRequest) finish(t *testing.T, b *backend) {
	t.Helper()
	defer s.res.Body.Close()
	rest, err := io.ReadAll(s.body)
	if err != nil {
		t.Fatalf("slow request was cut: %v (got %q)", err, rest)
	}
	if string(rest) != "last-"+b.name+"\n" {
		t.Fatalf("slow request rest = %q", rest)
	}
}

// writeFile writes content atomically (temp file + rename), as editors and
// config management do, so the watcher never sees a half-written file.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a loopback address that was free a moment ago, for the
// tests that need two distinct listen keys.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
