package reload

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long a Watcher waits after the last event on a
// file before it reports the change: editors write in several steps.
const DefaultDebounce = 100 * time.Millisecond

// Watcher reports changes to a set of files. It watches each file's parent
// directory, so a file replaced by rename (vim, VS Code), created after
// start, or reached through a symlink that is swapped (Kubernetes
// ConfigMaps: ..data -> ..2024_01_01) is seen. It also polls each file's
// resolved identity every PollInterval as a safety net for filesystems
// without inotify events.
type Watcher struct {
	Debounce     time.Duration
	PollInterval time.Duration
	Log          *slog.Logger

	mu    sync.Mutex
	files map[string]*watched // by cleaned absolute path
	fw    *fsnotify.Watcher
	dirs  map[string]int
}

type watched struct {
	// def is the callback set by Add; subs are Subscribe's, each with its
	// own identity so that one owner's cancel never drops another's.
	def   func(path string)
	subs  []*sub
	sig   string // last seen identity of the resolved file
	timer *time.Timer
	force bool
}

// NewWatcher creates a Watcher. Run must be called to deliver events.
func NewWatcher(log *slog.Logger) (*Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Watcher{
		Debounce:     DefaultDebounce,
		PollInterval: 2 * time.Second,
		Log:          log,
		files:        map[string]*watched{},
		fw:           fw,
		dirs:         map[string]int{},
	}, nil
}

type sub struct{ fn func(path string) }

// Add watches path and calls onChange (from the Watcher's goroutine, after
// debouncing) whenever its content or resolved target changes. Adding the
// same path again replaces the callback set by Add (not those of
// Subscribe).
//
// Add/Remove keep one callback per path: when several owners watch the same
// file (two endpoints sharing a certificate or a policy file, or the old
// and new version of an endpoint during a config reload), they must use
// Subscribe instead, or one owner's Remove silently ends the other's watch.
func (w *Watcher) Add(path string, onChange func(path string)) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	f, err := w.fileLocked(abs)
	if err != nil {
		return err
	}
	f.def = onChange
	return nil
}

// Subscribe watches path like Add, but independently of any other
// subscriber of the same path: each subscription lives until its cancel
// func is called (cancel is idempotent).
func (w *Watcher) Subscribe(path string, onChange func(path string)) (cancel func(), err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	f, err := w.fileLocked(abs)
	if err != nil {
		return nil, err
	}
	s := &sub{fn: onChange}
	f.subs = append(f.subs, s)
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			f, ok := w.files[abs]
			if !ok {
				return
			}
			f.subs = slices.DeleteFunc(f.subs, func(x *sub) bool { return x == s })
			w.dropIfUnusedLocked(abs, f)
		})
	}, nil
}

// fileLocked returns the entry of abs, creating it (and watching its
// directory) when needed. Caller holds w.mu.
func (w *Watcher) fileLocked(abs string) (*watched, error) {
	if f, ok := w.files[abs]; ok {
		return f, nil
	}
	dir := filepath.Dir(abs)
	if w.dirs[dir] == 0 {
		if err := w.fw.Add(dir); err != nil {
			return nil, err
		}
	}
	w.dirs[dir]++
	f := &watched{sig: fileSig(abs)}
	w.files[abs] = f
	return f, nil
}

// dropIfUnusedLocked stops watching abs once nobody listens. Caller holds
// w.mu.
func (w *Watcher) dropIfUnusedLocked(abs string, f *watched) {
	if f.def != nil || len(f.subs) > 0 {
		return
	}
	if f.timer != nil {
		f.timer.Stop()
	}
	delete(w.files, abs)
	dir := filepath.Dir(abs)
	if w.dirs[dir]--; w.dirs[dir] <= 0 {
		delete(w.dirs, dir)
		_ = w.fw.Remove(dir)
	}
}

// Remove drops the callback Add set for path; subscriptions made with
// Subscribe are unaffected.
func (w *Watcher) Remove(path string) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	f, ok := w.files[abs]
	if !ok {
		return
	}
	f.def = nil
	w.dropIfUnusedLocked(abs, f)
}

// Run delivers events until ctx is done, then closes the watcher.
func (w *Watcher) Run(ctx context.Context) {
	defer w.fw.Close()
	poll := time.NewTicker(w.PollInterval)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			w.mu.Lock()
			for _, f := range w.files {
				if f.timer != nil {
					f.timer.Stop()
				}
			}
			w.mu.Unlock()
			return
		case ev, ok := <-w.fw.Events:
			if !ok {
				return
			}
			w.event(ev.Name)
		case err, ok := <-w.fw.Errors:
			if !ok {
				return
			}
			w.Log.Warn("file watcher error", "err", err)
		case <-poll.C:
			w.poll()
		}
	}
}

// event handles a change of name inside a watched directory. Any event in a
// directory may change what a watched symlink resolves to (..data swaps), so
// every watched file of that directory is re-checked; but only the file the
// event names is reported regardless of its identity, so that writing one
// file does not make its neighbours' owners reload too.
func (w *Watcher) event(name string) {
	name = filepath.Clean(name)
	dir := filepath.Dir(name)
	w.mu.Lock()
	defer w.mu.Unlock()
	for path, f := range w.files {
		if filepath.Dir(path) != dir {
			continue
		}
		w.schedule(path, f, path == name)
	}
}

func (w *Watcher) poll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for path, f := range w.files {
		if f.timer == nil && fileSig(path) != f.sig {
			w.schedule(path, f, false)
		}
	}
}

// schedule (re)arms the debounce timer of one file. Caller holds w.mu.
// An inotify event always reports (force): mtime and size can stay equal
// across two quick writes, and callers compare content themselves. A poll
// reports only when the file's identity changed.
func (w *Watcher) schedule(path string, f *watched, force bool) {
	if f.timer != nil {
		force = force || f.force
	}
	f.force = force
	if f.timer != nil {
		f.timer.Stop()
	}
	f.timer = time.AfterFunc(w.Debounce, func() {
		w.mu.Lock()
		cur, ok := w.files[path]
		if !ok || cur != f {
			w.mu.Unlock()
			return
		}
		f.timer = nil
		sig := fileSig(path)
		changed := sig != f.sig || (f.force && sig != "missing")
		f.force = false
		f.sig = sig
		var cbs []func(string)
		if changed {
			if f.def != nil {
				cbs = append(cbs, f.def)
			}
			for _, s := range f.subs {
				cbs = append(cbs, s.fn)
			}
		}
		w.mu.Unlock()
		for _, cb := range cbs {
			cb(path)
		}
	})
}

// fileSig identifies the file a path resolves to and its content version:
// resolved path, size, mtime and inode-ish identity via os.FileInfo.
func fileSig(path string) string {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "missing"
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "missing"
	}
	return real + "|" + fi.ModTime().String() + "|" + strconv.FormatInt(fi.Size(), 10)
}
