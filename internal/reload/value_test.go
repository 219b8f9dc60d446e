package reload

import (
	"sync"
	"sync/atomic"
	"testing"
)

type res struct {
	id      int
	cleaned atomic.Int32
}

func cleanup(r *res) { r.cleaned.Add(1) }

func TestValueEmpty(t *testing.T) {
	var v Value[*res]
	if v.Acquire() != nil {
		t.Fatal("Acquire on empty Value returned a version")
	}
	if _, ok := v.Load(); ok {
		t.Fatal("Load on empty Value reported ok")
	}
	var nilVersion *Version[*res]
	nilVersion.Release() // must not panic
	v.Close()            // nothing to close
}

func TestSwapCleansUpAfterDrain(t *testing.T) {
	var v Value[*res]
	r1, r2, r3 := &res{id: 1}, &res{id: 2}, &res{id: 3}
	v.Swap(r1, cleanup)

	h1 := v.Acquire()
	h1b := v.Acquire()
	if h1.Val != r1 || h1b.Val != r1 {
		t.Fatal("Acquire did not return the current value")
	}
	v.Swap(r2, cleanup)
	if got, _ := v.Load(); got != r2 {
		t.Fatal("Load after Swap is not the new value")
	}
	if h := v.Acquire(); h.Val != r2 {
		t.Fatal("Acquire after Swap is not the new value")
	} else {
		h.Release()
	}
	// r1 still has two readers.
	if r1.cleaned.Load() != 0 {
		t.Fatal("old version cleaned up while readers hold it")
	}
	h1.Release()
	if r1.cleaned.Load() != 0 {
		t.Fatal("old version cleaned up while one reader still holds it")
	}
	h1b.Release()
	if r1.cleaned.Load() != 1 {
		t.Fatalf("old version cleaned %d times after drain, want 1", r1.cleaned.Load())
	}
	// No readers: the swapped-out version is cleaned at once.
	v.Swap(r3, cleanup)
	if r2.cleaned.Load() != 1 || r3.cleaned.Load() != 0 {
		t.Fatalf("r2 cleaned %d, r3 cleaned %d", r2.cleaned.Load(), r3.cleaned.Load())
	}
	// Close retires the current one, after its readers.
	h3 := v.Acquire()
	v.Close()
	if v.Acquire() != nil {
		t.Fatal("Acquire after Close returned a version")
	}
	if r3.cleaned.Load() != 0 {
		t.Fatal("closed version cleaned while held")
	}
	h3.Release()
	if r3.cleaned.Load() != 1 {
		t.Fatal("closed version not cleaned after drain")
	}
}

func TestSwapNilCleanup(t *testing.T) {
	var v Value[int]
	v.Swap(1, nil)
	h := v.Acquire()
	v.Swap(2, nil) // no cleanup function: nothing to run, nothing to panic
	h.Release()
	if got, _ := v.Load(); got != 2 {
		t.Fatalf("Load = %d", got)
	}
}

// Readers never see a cleaned-up version, every version is cleaned exactly
// once, and cleanups follow the swap order's drain. Run with -race.
func TestValueConcurrent(t *testing.T) {
	var v Value[*res]
	const swaps = 300
	all := make([]*res, swaps+1)
	all[0] = &res{id: 0}
	v.Swap(all[0], cleanup)

	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 6 {
		wg.Go(func() {
			last := -1
			for !stop.Load() {
				h := v.Acquire()
				if h == nil {
					bad.Add(1)
					return
				}
				if h.Val.cleaned.Load() != 0 {
					bad.Add(1) // reader got a version already cleaned
				}
				if h.Val.id < last {
					bad.Add(1) // versions never go backwards for one reader
				}
				last = h.Val.id
				if h.Val.cleaned.Load() != 0 {
					bad.Add(1)
				}
				h.Release()
			}
		})
	}
	for i := 1; i <= swaps; i++ {
		all[i] = &res{id: i}
		v.Swap(all[i], cleanup)
	}
	stop.Store(true)
	wg.Wait()
	v.Close()
	if bad.Load() != 0 {
		t.Fatalf("%d bad observations", bad.Load())
	}
	for _, r := range all {
		if n := r.cleaned.Load(); n != 1 {
			t.Fatalf("version %d cleaned %d times", r.id, n)
		}
	}
}
