package reloadtest

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A started watcher delivers a change to a file written after Add.
func TestStartDelivers(t *testing.T) {
	w := Start(t, nil, 5*time.Millisecond)
	path := filepath.Join(t.TempDir(), "f")
	changed := make(chan struct{}, 1)
	if err := w.Add(path, func(string) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("no change reported")
	}
}
