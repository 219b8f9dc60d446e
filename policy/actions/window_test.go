package actions

import (
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for the window table.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestTable(t *testing.T, window time.Duration, capacity int64, maxKeys int) (*windowTable, *fakeClock) {
	t.Helper()
	tb := newWindowTable(window, capacity, maxKeys)
	t.Cleanup(func() { tb.Close() })
	// Start exactly at a window boundary so the arithmetic below is exact.
	clk := &fakeClock{t: time.Unix(0, 0).Add(window * 1000)}
	tb.now = clk.now
	return tb, clk
}

func TestWindowCapacityAndSlide(t *testing.T) {
	tb, clk := newTestTable(t, time.Minute, 10, 0)
	// 10 requests spread over the first window, 6s apart: t=0s..54s.
	for i := 0; i < 10; i++ {
		if d := tb.take("k"); d.limited {
			t.Fatalf("request %d limited", i)
		}
		if i < 9 {
			clk.add(6 * time.Second)
		}
	}
	d := tb.take("k") // at 54s, all 10 in the last minute
	if !d.limited {
		t.Fatal("11th request not limited")
	}
	// Spread evenly over 0s..54s, the estimate drops to 9 once a tenth of
	// that span (5.4s) has left the window: at 65.4s, 11.4s from now.
	if d.retryAfter != 12*time.Second {
		t.Errorf("retryAfter = %v, want 12s", d.retryAfter)
	}
	// Another key is independent.
	if tb.take("other").limited {
		t.Fatal("other key limited")
	}
	// At 87s (next window) the requests of 30s..54s are still within the
	// last minute: 10*(54-27)/54 = 5 counted, so 5 more fit.
	clk.add(33 * time.Second)
	for i := 0; i < 5; i++ {
		if tb.take("k").limited {
			t.Fatalf("after slide, request %d limited", i)
		}
	}
	if d := tb.take("k"); !d.limited || d.retryAfter < time.Second || d.retryAfter > time.Minute {
		t.Fatalf("expected a limit with 1s..60s to wait, got %+v", d)
	}
	// A period after the last request nothing counts any more.
	clk.add(time.Minute)
	for i := 0; i < 10; i++ {
		if tb.take("k").limited {
			t.Fatalf("after expiry, request %d limited", i)
		}
	}
}

// TestWindowRetryAfterNeverExceedsRate is the property the span estimate
// buys: a refused client may always retry within one period, whatever the
// capacity and the timing of its requests.
func TestWindowRetryAfterNeverExceedsRate(t *testing.T) {
	for _, capacity := range []int64{1, 2, 3, 7, 100} {
		tb, clk := newTestTable(t, time.Minute, capacity, 0)
		step := 500 * time.Millisecond
		for i := 0; i < 2000; i++ {
			d := tb.take("k")
			if d.limited && (d.retryAfter < time.Second || d.retryAfter > time.Minute) {
				t.Fatalf("capacity %d, step %d: retryAfter %v", capacity, i, d.retryAfter)
			}
			clk.add(step)
			step = step*7/5%(9*time.Second) + time.Millisecond // irregular gaps
		}
	}
}

func TestWindowCapacityOne(t *testing.T) {
	tb, clk := newTestTable(t, time.Minute, 1, 0)
	clk.add(59 * time.Second) // near the end of a window
	if tb.take("k").limited {
		t.Fatal("first limited")
	}
	clk.add(2 * time.Second) // next window
	d := tb.take("k")
	if !d.limited || d.retryAfter != 58*time.Second {
		t.Fatalf("got %+v, want limited with 58s", d)
	}
	clk.add(58 * time.Second)
	if tb.take("k").limited {
		t.Fatal("limited a full period after the only request")
	}
}

// TestWindowBoundedKeys feeds far more distinct keys than the cap and checks
// both the key count and the heap stay bounded.
func TestWindowBoundedKeys(t *testing.T) {
	const maxKeys = 1 << 12
	tb, clk := newTestTable(t, time.Minute, 5, maxKeys)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 200_000; i++ {
		tb.take("client-" + strconv.Itoa(i))
	}
	if n := tb.len(); n > maxKeys {
		t.Fatalf("table holds %d keys, cap %d", n, maxKeys)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	// 4096 entries of ~64 bytes plus maps: far below 4 MB. 200k retained
	// keys would be well above it.
	if grow := int64(after.HeapAlloc) - int64(before.HeapAlloc); grow > 4<<20 {
		t.Errorf("heap grew by %d bytes for a %d-key table", grow, maxKeys)
	}
	// The most recent key survived eviction and is still counted.
	for i := 0; i < 4; i++ {
		tb.take("client-199999")
	}
	if !tb.take("client-199999").limited {
		t.Error("recent key lost its count")
	}
	// The janitor's sweep frees expired keys.
	clk.add(3 * time.Minute)
	tb.sweep()
	if n := tb.len(); n != 0 {
		t.Fatalf("after expiry sweep %d keys remain", n)
	}
}

func TestWindowDefaultCapHolds1e5Keys(t *testing.T) {
	tb, _ := newTestTable(t, time.Minute, 5, 0)
	for i := 0; i < 300_000; i++ {
		tb.take(strconv.Itoa(i))
	}
	if n := tb.len(); n > defaultMaxKeys {
		t.Fatalf("table holds %d keys, cap %d", n, defaultMaxKeys)
	}
}

func TestWindowConcurrent(t *testing.T) {
	tb, _ := newTestTable(t, time.Minute, 1000, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := 0; i < 500; i++ {
				if !tb.take("shared").limited {
					n++
				}
			}
			mu.Lock()
			allowed += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if allowed != 1000 {
		t.Fatalf("allowed %d of 4000, want exactly the capacity 1000", allowed)
	}
}

func TestWindowCloseIdempotent(t *testing.T) {
	tb := newWindowTable(time.Minute, 1, 0)
	tb.Close()
	tb.Close()
}

// TestWindowShardLRU checks the eviction order the hard cap relies on:
// touching an entry protects it, the least recently used one goes first.
func TestWindowShardLRU(t *testing.T) {
	sh := &windowShard{keys: map[uint64]*windowEntry{}}
	add := func(k uint64) *windowEntry {
		e := &windowEntry{key: k}
		sh.keys[k] = e
		sh.pushFront(e)
		return e
	}
	a, _, _ := add(1), add(2), add(3)
	sh.moveFront(a) // order now 1, 3, 2 (newest first)
	sh.evict(sh.tail)
	if _, ok := sh.keys[2]; ok || len(sh.keys) != 2 {
		t.Fatalf("evicted the wrong entry: %v", sh.keys)
	}
	sh.evict(sh.tail)
	sh.evict(sh.tail)
	sh.evict(sh.tail) // empty: no-op
	if len(sh.keys) != 0 || sh.head != nil || sh.tail != nil {
		t.Fatalf("shard not empty: %v %v %v", sh.keys, sh.head, sh.tail)
	}
}

func TestWindowRollGap(t *testing.T) {
	e := &windowEntry{idx: 5, prev: span{n: 3}, curr: span{n: 4}}
	e.roll(6)
	if e.prev.n != 4 || e.curr.n != 0 {
		t.Fatalf("roll by one: %+v", e)
	}
	e.curr.n = 2
	e.roll(9)
	if e.prev.n != 0 || e.curr.n != 0 || e.idx != 9 {
		t.Fatalf("roll over a gap: %+v", e)
	}
}
