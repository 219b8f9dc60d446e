package reload

import (
	"sync"
	"sync/atomic"
)

// Version is one published version of a T with its reader count.
type Version[T any] struct {
	Val     T
	refs    atomic.Int64 // readers + 1 while current
	cleanup func(T)
	once    sync.Once
}

// Release ends one reader's use of the version. Safe to call on nil.
func (v *Version[T]) Release() {
	if v == nil {
		return
	}
	if v.refs.Add(-1) == 0 {
		v.once.Do(func() {
			if v.cleanup != nil {
				v.cleanup(v.Val)
			}
		})
	}
}

// Value holds the current version of a T.
type Value[T any] struct {
	cur atomic.Pointer[Version[T]]
}

// Load returns the current value without pinning it. Use it for values whose
// old versions need no cleanup.
func (h *Value[T]) Load() (T, bool) {
	v := h.cur.Load()
	if v == nil {
		var zero T
		return zero, false
	}
	return v.Val, true
}

// Acquire pins the current version; the caller must Release it. It returns
// nil when nothing was stored yet.
func (h *Value[T]) Acquire() *Version[T] {
	for {
		v := h.cur.Load()
		if v == nil {
			return nil
		}
		// A version whose count already reached 0 was swapped out and is
		// being cleaned up: retry with the new current one.
		n := v.refs.Load()
		if n <= 0 {
			continue
		}
		if v.refs.CompareAndSwap(n, n+1) {
			return v
		}
	}
}

// Swap publishes val. The previous version's cleanup runs once its last
// reader has released it (immediately when none holds it).
func (h *Value[T]) Swap(val T, cleanup func(T)) {
	nv := &Version[T]{Val: val, cleanup: cleanup}
	nv.refs.Store(1)
	if old := h.cur.Swap(nv); old != nil {
		old.Release() // drop the "current" reference
	}
}

// Close retires the current version (running its cleanup once drained).
func (h *Value[T]) Close() {
	if old := h.cur.Swap(nil); old != nil {
		old.Release()
	}
}
