package policy

// Handle: the live policy of an endpoint, swapped on reload while
// in-flight exchanges finish on the version they started with. It is the
// exchange.Hooks the proxy calls.

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/internal/reload"
)

// Handle holds the current *Policy of one policy source (file or inline).
type Handle struct {
	name   string // file path or inline name; the metrics' file label
	path   string // "" for inline handles
	opts   Options
	cur    reload.Value[*Policy]
	m      *metrics
	mu     sync.Mutex // serialises reloads
	src    [sha256.Size]byte
	active string // hash labelled active in the metrics
	closed atomic.Bool
	// unwatch ends this handle's subscription to its file. Each handle
	// subscribes on its own (reload.Watcher.Subscribe), so endpoints that
	// share one policy file all follow it and closing one leaves the
	// others watching.
	unwatch func()

	reloaded func(error) // tests: told of every watcher-triggered reload
}

// NewFileHandle loads the policy file at path (an error if it is broken)
// and, when opts.Watcher is set, reloads it whenever it changes: a broken
// version is logged once and the running one kept; a good one is swapped
// in.
func NewFileHandle(path string, opts Options) (*Handle, error) {
	h := &Handle{name: path, path: path, opts: opts, m: metricsFor(opts.Registerer)}
	// Watch before the first read, holding the reload lock, so that a
	// change made while we load is not missed: its reload waits for the
	// lock and then compares the content with what we loaded.
	h.mu.Lock()
	defer h.mu.Unlock()
	if opts.Watcher != nil {
		cancel, err := opts.Watcher.Subscribe(path, func(string) { h.watchReload() })
		if err != nil {
			return nil, fmt.Errorf("policy: watch %s: %w", path, err)
		}
		h.unwatch = cancel
	}
	fail := func(err error) (*Handle, error) {
		h.closed.Store(true)
		if h.unwatch != nil {
			h.unwatch()
		}
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fail(fmt.Errorf("policy: %w", err))
	}
	p, err := Parse(path, data, opts)
	if err != nil {
		return fail(err)
	}
	h.publish(p, data)
	return h, nil
}

// NewInlineHandle parses an inline policy (e.g. traffic_policy in the
// config file). It never reloads by itself.
func NewInlineHandle(name string, src []byte, opts Options) (*Handle, error) {
	p, err := Parse(name, src, opts)
	if err != nil {
		return nil, err
	}
	return NewPolicyHandle(p, opts), nil
}

// NewPolicyHandle wraps an already parsed policy (see ParseNode).
func NewPolicyHandle(p *Policy, opts Options) *Handle {
	h := &Handle{name: p.name, opts: opts, m: metricsFor(opts.Registerer)}
	h.publish(p, nil)
	return h
}

// Policy returns the current version without pinning it (for inspection;
// exchanges use the hooks).
func (h *Handle) Policy() *Policy {
	p, _ := h.cur.Load()
	return p
}

// Reload re-reads the file (SIGHUP). On error the running version stays
// and the error, with file:line:col, is returned. Inline handles have
// nothing to reload.
func (h *Handle) Reload() error {
	if h.path == "" || h.closed.Load() {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	data, err := os.ReadFile(h.path)
	if err != nil {
		h.m.reloads.WithLabelValues(h.name, "failure").Inc()
		return fmt.Errorf("policy: %w", err)
	}
	if sha256.Sum256(data) == h.src {
		return nil // unchanged (touch, or an editor's extra events)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		// A truncate-then-write save (shell '>', cp, os.WriteFile) can be
		// seen between its two steps; an empty policy would drop every
		// rule (fail open). To really clear a policy, write '{}'.
		h.m.reloads.WithLabelValues(h.name, "failure").Inc()
		return fmt.Errorf("%s: file is empty (a write in progress?); write '{}' for a policy without rules", h.path)
	}
	p, err := Parse(h.path, data, h.opts)
	if err != nil {
		h.m.reloads.WithLabelValues(h.name, "failure").Inc()
		return err
	}
	if h.closed.Load() {
		p.Close()
		return nil
	}
	h.publish(p, data)
	h.m.reloads.WithLabelValues(h.name, "success").Inc()
	h.opts.log().Info("policy reloaded", "file", h.name, "hash", p.hash)
	return nil
}

func (h *Handle) watchReload() {
	err := h.Reload()
	if err != nil {
		// One line: the joined errors are rendered with "; " between them.
		h.opts.log().Error("policy reload failed; keeping the running version",
			"file", h.name, "err", oneLine(err))
	}
	if h.reloaded != nil {
		h.reloaded(err)
	}
}

func oneLine(err error) string {
	return string(bytes.ReplaceAll([]byte(err.Error()), []byte("\n"), []byte("; ")))
}

// publish swaps p in; the previous version is closed once drained.
func (h *Handle) publish(p *Policy, src []byte) {
	if src != nil {
		h.src = sha256.Sum256(src)
	}
	h.cur.Swap(p, (*Policy).Close)
	if h.active != "" {
		h.m.active.DeleteLabelValues(h.name, h.active)
	}
	h.active = p.hash
	h.m.active.WithLabelValues(h.name, p.hash).Set(1)
}

// Close stops watching and closes the current version once drained. It is
// idempotent.
func (h *Handle) Close() {
	if h.closed.Swap(true) {
		return
	}
	if h.unwatch != nil {
		h.unwatch()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cur.Close()
	if h.active != "" {
		h.m.active.DeleteLabelValues(h.name, h.active)
		h.active = ""
	}
}

// OnConnect runs on_tcp_connect.
func (h *Handle) OnConnect(c *exchange.Conn) error {
	v := h.cur.Acquire()
	if v == nil {
		return nil
	}
	defer v.Release()
	return v.Val.RunConnect(c)
}

// OnRequest pins the current version in x.Pinned (released in Done) and
// runs on_http_request.
func (h *Handle) OnRequest(x *exchange.Exchange) error {
	v := h.pin(x)
	if v == nil {
		return nil
	}
	inheritVars(x)
	return v.Val.RunRequest(x)
}

// OnResponse runs on_http_response with the version pinned in OnRequest.
func (h *Handle) OnResponse(x *exchange.Exchange) error {
	v, _ := x.Pinned.(*reload.Version[*Policy])
	if v == nil {
		v = h.pin(x)
		if v == nil {
			return nil
		}
	}
	return v.Val.RunResponse(x)
}

// Done releases the version pinned for x. Calling it twice is harmless.
func (h *Handle) Done(x *exchange.Exchange) {
	if v, ok := x.Pinned.(*reload.Version[*Policy]); ok {
		x.Pinned = nil
		v.Release()
	}
}

func (h *Handle) pin(x *exchange.Exchange) *reload.Version[*Policy] {
	if v, ok := x.Pinned.(*reload.Version[*Policy]); ok {
		return v
	}
	v := h.cur.Acquire()
	if v != nil {
		x.Pinned = v
	}
	return v
}
