package policy

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/internal/reload/reloadtest"
	"github.com/sluicehq/sluice/internal/testlog"
)

func versionPolicy(id string, v int) string {
	return fmt.Sprintf(`on_http_request:
  - actions:
      - type: t-header
        config: {name: X-Version, value: "%d"}
      - type: t-closer
        config: {id: "%s-%d"}
on_http_response:
  - actions:
      - type: t-header
        config: {name: X-Version, value: "%d"}
`, v, id, v, v)
}

const brokenPolicy = `on_http_request:
  - expressions: ["req.nosuch == 1"]
`

// renameSave writes data next to path and renames it over path, as vim
// and most editors do.
func renameSave(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func newExchange() *exchange.Exchange {
	c, x := fixture()
	x.Conn = c
	x.Req.Header = http.Header{}
	x.Res = nil
	x.Vars = nil
	return x
}

// serve runs one exchange through the handle and returns the version seen
// in the request and in the response.
func serve(t testing.TB, h *Handle) (string, string, *exchange.Exchange) {
	x := newExchange()
	if err := h.OnRequest(x); err != nil {
		t.Errorf("OnRequest: %v", err)
	}
	x.Res = &exchange.Response{StatusCode: 200, Header: http.Header{}, ContentLength: 0}
	if err := h.OnResponse(x); err != nil {
		t.Errorf("OnResponse: %v", err)
	}
	return x.Req.Header.Get("X-Version"), x.Res.Header.Get("X-Version"), x
}

func TestFileHandleWatchReload(t *testing.T) {
	id := fmt.Sprintf("watch%d", time.Now().UnixNano())
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	renameSave(t, path, versionPolicy(id, 1))

	var logs testlog.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	w := reloadtest.Start(t, log, 20*time.Millisecond)

	reg := prometheus.NewRegistry()
	h, err := NewFileHandle(path, Options{Log: log, Registerer: reg, Watcher: w})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	reloads := make(chan error, 16)
	h.mu.Lock()
	h.reloaded = func(err error) { reloads <- err }
	h.mu.Unlock()

	wait := func() error {
		select {
		case err := <-reloads:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("no reload reported")
			return nil
		}
	}
	check := func(want string) {
		t.Helper()
		req, res, x := serve(t, h)
		h.Done(x)
		if req != want || res != want {
			t.Fatalf("serving version %q/%q, want %q", req, res, want)
		}
	}
	check("1")

	renameSave(t, path, versionPolicy(id, 2))
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	check("2")
	if n := closeCount(id + "-1"); n != 1 {
		t.Fatalf("old version closed %d times", n)
	}

	renameSave(t, path, brokenPolicy)
	err = wait()
	if err == nil || !strings.Contains(err.Error(), path+`:2:20: CEL: unknown variable "req.nosuch"`) {
		t.Fatalf("broken reload: %v", err)
	}
	check("2")
	errLines := 0
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=ERROR") {
			errLines++
			if !strings.Contains(l, "policy.yaml:2:20") {
				t.Errorf("error line without position: %s", l)
			}
		}
	}
	if errLines != 1 {
		t.Fatalf("%d error lines:\n%s", errLines, logs.String())
	}

	// Fixing the file applies it (written in place this time).
	if err := os.WriteFile(path, []byte(versionPolicy(id, 3)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	check("3")

	got := gather(t, reg)
	want := map[string]float64{
		"sluice_policy_reloads_total{file=" + path + ",result=success}":               2,
		"sluice_policy_reloads_total{file=" + path + ",result=failure}":               1,
		"sluice_policy_active_info{file=" + path + ",hash=" + h.Policy().Hash() + "}": 1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("metrics\n got %v\nwant %v", got, want)
	}
}

// gather flattens a registry into "name{label=value,...}" -> value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue()
			if m.Counter != nil {
				v = m.GetCounter().GetValue()
			}
			out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}

func TestFileHandleErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewFileHandle(filepath.Join(dir, "missing.yaml"), Options{}); err == nil {
		t.Fatal("missing file accepted")
	}
	path := filepath.Join(dir, "broken.yaml")
	os.WriteFile(path, []byte(brokenPolicy), 0o644)
	if _, err := NewFileHandle(path, Options{}); err == nil || !strings.Contains(err.Error(), "broken.yaml:2:20") {
		t.Fatalf("broken file: %v", err)
	}
}

func TestReloadUnchangedAndClosed(t *testing.T) {
	id := fmt.Sprintf("unchanged%d", time.Now().UnixNano())
	path := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(path, []byte(versionPolicy(id, 1)), 0o644)
	h, err := NewFileHandle(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := h.Policy()
	if err := h.Reload(); err != nil || h.Policy() != first {
		t.Fatalf("unchanged reload swapped: %v", err)
	}
	// An exchange pinned before Close keeps its version until Done.
	x := newExchange()
	h.OnRequest(x)
	h.Close()
	h.Close()
	if n := closeCount(id + "-1"); n != 0 {
		t.Fatal("closed while an exchange held it")
	}
	h.Done(x)
	h.Done(x)
	if n := closeCount(id + "-1"); n != 1 {
		t.Fatalf("closed %d times", n)
	}
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	// A closed handle has no policy: hooks do nothing.
	y := newExchange()
	if err := h.OnRequest(y); err != nil || y.Req.Header.Get("X-Version") != "" {
		t.Fatalf("closed handle ran a policy: %v", err)
	}
	h.Done(y)
}

// TestReloadUnderLoad swaps 240 versions (every third one broken) while
// workers run exchanges: no exchange fails, each sees one version in both
// phases, and every retired version is closed exactly once, after its last
// exchange finished.
func TestReloadUnderLoad(t *testing.T) {
	id := fmt.Sprintf("load%d", time.Now().UnixNano())
	path := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(path, []byte(versionPolicy(id, 0)), 0o644)
	h, err := NewFileHandle(path, Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		served   atomic.Int64
		failures atomic.Int64
	)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1_000_000 && !stop.Load(); i++ {
				req, res, x := serve(t, h)
				if req == "" || req != res {
					failures.Add(1)
					t.Errorf("exchange saw versions %q and %q", req, res)
				}
				if closeCount(id+"-"+req) != 0 {
					failures.Add(1)
					t.Errorf("version %s closed while in use", req)
				}
				h.Done(x)
				served.Add(1)
				runtime.Gosched() // leave the CPU to the reloader now and then
			}
		}()
	}
	valid := []int{0}
	for v := 1; v <= 240; v++ {
		if v%3 == 0 {
			os.WriteFile(path, []byte(brokenPolicy+fmt.Sprintf("# %d\n", v)), 0o644)
			if err := h.Reload(); err == nil {
				t.Fatalf("broken version %d accepted", v)
			}
			continue
		}
		os.WriteFile(path, []byte(versionPolicy(id, v)), 0o644)
		if err := h.Reload(); err != nil {
			t.Fatal(err)
		}
		valid = append(valid, v)
		runtime.Gosched() // let exchanges start on this version
	}
	stop.Store(true)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d failures", failures.Load())
	}
	last := valid[len(valid)-1]
	for _, v := range valid[:len(valid)-1] {
		if n := closeCount(fmt.Sprintf("%s-%d", id, v)); n != 1 {
			t.Errorf("version %d closed %d times", v, n)
		}
	}
	if n := closeCount(fmt.Sprintf("%s-%d", id, last)); n != 0 {
		t.Errorf("current version closed %d times", n)
	}
	h.Close()
	if n := closeCount(fmt.Sprintf("%s-%d", id, last)); n != 1 {
		t.Errorf("current version closed %d times after Close", n)
	}
	t.Logf("%d exchanges over %d versions", served.Load(), len(valid))
}

func TestInlineHandle(t *testing.T) {
	h, err := NewInlineHandle("config.yaml#endpoints[0]", []byte(versionPolicy("inline", 7)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	req, res, x := serve(t, h)
	h.Done(x)
	if req != "7" || res != "7" {
		t.Fatalf("%q %q", req, res)
	}
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewInlineHandle("inline", []byte(brokenPolicy), Options{}); err == nil {
		t.Fatal("broken inline accepted")
	}
}

// TestSharedPolicyFile: two endpoints using one file both follow it, and
// closing one does not stop the other's reloads.
func TestSharedPolicyFile(t *testing.T) {
	id := fmt.Sprintf("shared%d", time.Now().UnixNano())
	path := filepath.Join(t.TempDir(), "shared.yaml")
	renameSave(t, path, versionPolicy(id, 1))
	w := reloadtest.Start(t, nil, 20*time.Millisecond)

	opts := Options{Log: slog.New(slog.DiscardHandler), Watcher: w}
	reloads := make(chan string, 16)
	newHandle := func(name string) *Handle {
		h, err := NewFileHandle(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		h.mu.Lock()
		h.reloaded = func(error) { reloads <- name }
		h.mu.Unlock()
		return h
	}
	a, b := newHandle("a"), newHandle("b")
	defer b.Close()
	waitFor := func(names ...string) {
		t.Helper()
		want := map[string]bool{}
		for _, n := range names {
			want[n] = true
		}
		for len(want) > 0 {
			select {
			case n := <-reloads:
				delete(want, n)
			case <-time.After(10 * time.Second):
				t.Fatalf("no reload for %v", want)
			}
		}
	}
	renameSave(t, path, versionPolicy(id, 2))
	waitFor("a", "b")
	for _, h := range []*Handle{a, b} {
		if req, _, x := serve(t, h); req != "2" {
			t.Fatalf("serving %q", req)
		} else {
			h.Done(x)
		}
	}
	a.Close()
	renameSave(t, path, versionPolicy(id, 3))
	waitFor("b")
	if req, _, x := serve(t, b); req != "3" {
		t.Fatalf("serving %q", req)
	} else {
		b.Done(x)
	}
}

func TestReloadRefusesEmptyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.yaml")
	src := "on_http_request:\n  - actions:\n      - type: t-record\n        config: {value: a}\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := NewFileHandle(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	before := h.Policy()
	if err := os.WriteFile(path, []byte("  \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.Reload(); err == nil || !strings.Contains(err.Error(), "file is empty") {
		t.Fatalf("Reload of an empty file: %v", err)
	}
	if h.Policy() != before {
		t.Fatal("an empty file replaced the running policy")
	}
	if err := os.WriteFile(path, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.Reload(); err != nil || h.Policy() == before {
		t.Fatalf("'{}' should load as an empty policy: %v", err)
	}
}
