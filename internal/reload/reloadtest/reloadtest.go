package reloadtest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/reload"
)

// Start returns a running Watcher that logs to log (nil discards) and
// debounces for debounce. Cleanup cancels it and waits for Run to return.
func Start(t testing.TB, log *slog.Logger, debounce time.Duration) *reload.Watcher {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w, err := reload.NewWatcher(log)
	if err != nil {
		t.Fatal(err)
	}
	w.Debounce = debounce
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}
