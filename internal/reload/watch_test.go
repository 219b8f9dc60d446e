package reload

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// startWatcher runs a Watcher with a short debounce and no polling, so
// the tests exercise fsnotify alone.
func startWatcher(t *testing.T) *Watcher {
	t.Helper()
	w, err := NewWatcher(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	w.Debounce = 30 * time.Millisecond
	w.PollInterval = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// notifications records the callbacks of one watched path together with
// the file's content at callback time.
func watch(t *testing.T, w *Watcher, path string) chan string {
	t.Helper()
	ch := make(chan string, 64)
	err := w.Add(path, func(p string) {
		if p != path {
			t.Errorf("callback for %q, want %q", p, path)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			ch <- "<" + err.Error() + ">"
			return
		}
		ch <- string(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func expect(t *testing.T, ch chan string, want string) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("callback saw %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no callback (want content %q)", want)
	}
}

// quiet asserts no further callback arrives within several debounce
// periods: absence can only be observed by waiting.
func quiet(t *testing.T, ch chan string) {
	t.Helper()
	select {
	case got := <-ch:
		t.Fatalf("unexpected callback seeing %q", got)
	case <-time.After(200 * time.Millisecond):
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestWatchInPlaceWrite(t *testing.T) {
	w := startWatcher(t)
	path := filepath.Join(t.TempDir(), "policy.yaml")
	write(t, path, "v1")
	ch := watch(t, w, path)
	write(t, path, "v2")
	expect(t, ch, "v2")
	// Same size, possibly the same mtime: still reported.
	write(t, path, "v3")
	expect(t, ch, "v3")
}

func TestWatchRenameSave(t *testing.T) {
	w := startWatcher(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write(t, path, "v1")
	ch := watch(t, w, path)
	for _, v := range []string{"v2", "v3"} { // the watch survives the rename
		tmp := filepath.Join(dir, ".policy.yaml.swp")
		write(t, tmp, v)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		expect(t, ch, v)
	}
}

// Kubernetes mounts a ConfigMap as dir/file -> ..data/file and
// dir/..data -> ..2024_xx; an update writes a new timestamped directory and
// renames a new ..data symlink over the old one.
func TestWatchSymlinkSwap(t *testing.T) {
	w := startWatcher(t)
	dir := t.TempDir()
	mk := func(version, content string) {
		if err := os.Mkdir(filepath.Join(dir, version), 0o700); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, version, "policy.yaml"), content)
	}
	mk("..v1", "v1")
	if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "policy.yaml")
	if err := os.Symlink(filepath.Join("..data", "policy.yaml"), path); err != nil {
		t.Fatal(err)
	}
	ch := watch(t, w, path)

	for i, v := range []string{"v2", "v3"} {
		prev := []string{"..v1", "..v2"}[i]
		mk(".."+v, v)
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(".."+v, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(dir, prev)); err != nil {
			t.Fatal(err)
		}
		expect(t, ch, v)
	}
}

func TestWatchDebounceCoalesces(t *testing.T) {
	w := startWatcher(t)
	w.Debounce = 150 * time.Millisecond // wide enough for a burst on a busy machine
	path := filepath.Join(t.TempDir(), "cert.pem")
	write(t, path, "start")
	ch := watch(t, w, path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 { // an editor writing in many small steps
		if _, err := f.WriteString(string(rune('a' + i))); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	expect(t, ch, "abcdefghijklmnopqrst")
	quiet(t, ch)
}

func TestWatchRemoveThenRecreate(t *testing.T) {
	w := startWatcher(t)
	path := filepath.Join(t.TempDir(), "geo.mmdb")
	write(t, path, "v1")
	ch := watch(t, w, path)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	// The removal is reported (the callback's reload fails and keeps the
	// old version); then the re-created file is.
	select {
	case got := <-ch:
		if got == "v1" {
			t.Fatalf("callback saw the removed content")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("removal not reported")
	}
	write(t, path, "v2")
	expect(t, ch, "v2")
}

func TestWatchFileCreatedLater(t *testing.T) {
	w := startWatcher(t)
	path := filepath.Join(t.TempDir(), "later.yaml")
	ch := watch(t, w, path)
	write(t, path, "hello")
	expect(t, ch, "hello")
}

func TestWatchOtherFilesIgnored(t *testing.T) {
	w := startWatcher(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	write(t, a, "a1")
	write(t, b, "b1")
	chA := watch(t, w, a)
	write(t, filepath.Join(dir, "unrelated.txt"), "x")
	write(t, b, "b2") // b is not watched
	quiet(t, chA)
	write(t, a, "a2")
	expect(t, chA, "a2")
}

func TestWatchRemoveStopsCallbacks(t *testing.T) {
	w := startWatcher(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write(t, a, "1")
	write(t, b, "1")
	chA := watch(t, w, a)
	chB := watch(t, w, b)
	w.Remove(a)
	write(t, a, "2")
	write(t, b, "2") // the directory is still watched for b
	expect(t, chB, "2")
	quiet(t, chA)
}

func TestWatchAddReplacesCallback(t *testing.T) {
	w := startWatcher(t)
	path := filepath.Join(t.TempDir(), "p")
	write(t, path, "1")
	first := watch(t, w, path)
	second := watch(t, w, path)
	write(t, path, "2")
	expect(t, second, "2")
	quiet(t, first)
}

func TestWatchAddMissingDir(t *testing.T) {
	w := startWatcher(t)
	if err := w.Add(filepath.Join(t.TempDir(), "nope", "file"), func(string) {}); err == nil {
		t.Fatal("Add in a missing directory succeeded")
	}
}

// The poll safety net reports a changed file when no inotify event came
// (network filesystems). Driven directly: no Run, so no events at all.
func TestPollDetectsChange(t *testing.T) {
	w, err := NewWatcher(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.fw.Close()
	w.Debounce = time.Millisecond
	path := filepath.Join(t.TempDir(), "f")
	write(t, path, "1")
	ch := watch(t, w, path)
	w.poll()
	quiet(t, ch) // unchanged: nothing
	write(t, path, "22")
	w.poll()
	expect(t, ch, "22")
}

// The config-reload pattern: the new endpoint subscribes to a file before
// the old one (drained later) cancels; two live endpoints may share a file.
// Each owner's cancel must end only its own subscription.
func TestSubscribeIndependentOwners(t *testing.T) {
	w := startWatcher(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "shared.pem")
	write(t, path, "v1")
	subscribe := func() (chan string, func()) {
		ch := make(chan string, 16)
		cancel, err := w.Subscribe(path, func(p string) {
			b, _ := os.ReadFile(p)
			ch <- string(b)
		})
		if err != nil {
			t.Fatal(err)
		}
		return ch, cancel
	}
	oldCh, oldCancel := subscribe()
	newCh, newCancel := subscribe()
	addCh := watch(t, w, path) // Add's callback lives alongside

	write(t, path, "v2")
	expect(t, oldCh, "v2")
	expect(t, newCh, "v2")
	expect(t, addCh, "v2")

	oldCancel() // the old endpoint drained
	oldCancel() // idempotent
	w.Remove(path)
	write(t, path, "v3")
	expect(t, newCh, "v3")
	quiet(t, oldCh)
	quiet(t, addCh)

	newCancel()
	w.mu.Lock()
	files, dirs := len(w.files), len(w.dirs)
	w.mu.Unlock()
	if files != 0 || dirs != 0 {
		t.Fatalf("after the last cancel: %d files, %d dirs still watched", files, dirs)
	}
}
