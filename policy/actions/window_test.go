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
	for i := 0; i < 10; i++ {
		if d := tb.take("k"); d.limited {
			t.Fatalf("request %d limited", i)
		}
	}
	d := tb.take("k")
	if !d.limited {
		t.Fatal("11th request not limited")
	}
	// All 10 are in the current window: wait the rest of it, then until
	// enough of the (now previous) window slid out: 1 - 9/10 = 0.1 window.
	if want := 66 * time.Second; d.retryAfter != want {
		t.Errorf("retryAfter = %v, want %v", d.retryAfter, want)
	}
	// Another key is independent.
	if tb.take("other").limited {
		t.Fatal("other key limited")
	}
	// Half into the next window, prev=10 counts 5: 5 more fit.
	clk.add(90 * time.Second)
	for i := 0; i < 5; i++ {
		if tb.take("k").limited {
			t.Fatalf("after slide, request %d limited", i)
		}
	}
	d = tb.take("k")
	if !d.limited {
		t.Fatal("expected limit after 5 more")
	}
	// est = 10*(1-g)+5 must drop to 9 → g = 0.6, now at 0.5 → 6s.
	if want := 6 * time.Second; d.retryAfter != want {
		t.Errorf("retryAfter = %v, want %v", d.retryAfter, want)
	}
	// Two windows later everything expired.
	clk.add(2 * time.Minute)
	for i := 0; i < 10; i++ {
		if tb.take("k").limited {
			t.Fatalf("after expiry, request %d limited", i)
		}
	}
}

func TestWindowCapacityOne(t *testing.T) {
	tb, clk := newTestTable(t, time.Minute, 1, 0)
	if tb.take("k").limited {
		t.Fatal("first limited")
	}
	d := tb.take("k")
	if !d.limited || d.retryAfter != 2*time.Minute {
		t.Fatalf("got %+v, want limited with 2m", d)
	}
	clk.add(2 * time.Minute)
	if tb.take("k").limited {
		t.Fatal("limited after two windows")
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
