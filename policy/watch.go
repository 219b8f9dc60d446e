package policy

import (
	"path/filepath"
	"sync"

	"github.com/sluicehq/sluice/internal/reload"
)

// reload.Watcher keeps one callback per path (adding a path again replaces
// it, removing it stops all watching). Several endpoints may share one
// policy file, so handles register here and one callback per (watcher,
// file) fans out to all of them.

type watchKey struct {
	w    *reload.Watcher
	path string
}

var (
	watchMu  sync.Mutex
	watchers = map[watchKey]map[*Handle]struct{}{}
)

func watchFile(w *reload.Watcher, path string, h *Handle) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	k := watchKey{w, abs}
	watchMu.Lock()
	defer watchMu.Unlock()
	set := watchers[k]
	if set == nil {
		if err := w.Add(abs, func(string) { fanout(k) }); err != nil {
			return err
		}
		set = map[*Handle]struct{}{}
		watchers[k] = set
	}
	set[h] = struct{}{}
	return nil
}

func unwatchFile(w *reload.Watcher, path string, h *Handle) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return
	}
	k := watchKey{w, abs}
	watchMu.Lock()
	defer watchMu.Unlock()
	set := watchers[k]
	if set == nil {
		return
	}
	delete(set, h)
	if len(set) == 0 {
		delete(watchers, k)
		w.Remove(abs)
	}
}

func fanout(k watchKey) {
	watchMu.Lock()
	hs := make([]*Handle, 0, len(watchers[k]))
	for h := range watchers[k] {
		hs = append(hs, h)
	}
	watchMu.Unlock()
	for _, h := range hs {
		h.watchReload()
	}
}
