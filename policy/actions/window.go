package actions

import (
	"context"
	"hash/maphash"
	"math"
	"sync"
	"time"
)

// windowTable is the counter store behind rate-limit: a sliding-window
// counter per bucket key. It keeps two fixed windows per key (the previous
// and the current one) and estimates the count over the last `rate` as
// prev*(1-elapsed) + curr, which needs 16 bytes of state per key instead of
// a timestamp per request.
//
// Memory is bounded three ways, because bucket keys come from clients and an
// attacker can mint as many as they like: keys are stored as 64-bit seeded
// hashes (not the key strings), a janitor drops keys whose windows have both
// expired, and a hard cap per table evicts the least recently used key when
// a new one arrives at a full shard.
type windowTable struct {
	window   time.Duration
	capacity int64
	seed     maphash.Seed
	shards   [windowShards]windowShard
	perShard int // hard cap of keys per shard
	now      func() time.Time

	stopOnce sync.Once
	stop     context.CancelFunc
	done     chan struct{}
}

const windowShards = 64

// defaultMaxKeys bounds one rate-limit action's memory to roughly 10 MB
// whatever the traffic looks like.
const defaultMaxKeys = 1 << 17

type windowShard struct {
	mu   sync.Mutex
	keys map[uint64]*windowEntry
	// LRU list by last use: head is the most recent, tail the oldest. The
	// janitor walks from the tail and stops at the first live entry.
	head, tail *windowEntry
	_          [40]byte // keep hot shard locks on separate cache lines
}

type windowEntry struct {
	key        uint64
	idx        int64 // index of the current window (unix nanos / window)
	prev, curr int64
	newer      *windowEntry
	older      *windowEntry
}

// newWindowTable starts a table and its janitor; Close stops the janitor.
func newWindowTable(window time.Duration, capacity int64, maxKeys int) *windowTable {
	if maxKeys <= 0 {
		maxKeys = defaultMaxKeys
	}
	per := maxKeys / windowShards
	if per < 1 {
		per = 1
	}
	t := &windowTable{
		window:   window,
		capacity: capacity,
		seed:     maphash.MakeSeed(),
		perShard: per,
		now:      time.Now,
		done:     make(chan struct{}),
	}
	for i := range t.shards {
		t.shards[i].keys = make(map[uint64]*windowEntry)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.stop = cancel
	go t.janitor(ctx)
	return t
}

// decision is the outcome of one take.
type decision struct {
	limited    bool
	retryAfter time.Duration // only when limited
}

// take counts one event for key unless that would exceed the capacity.
// Limited events are not counted, so a client that keeps hammering is let
// through again as soon as its earlier requests slide out of the window.
func (t *windowTable) take(key string) decision {
	h := maphash.String(t.seed, key)
	sh := &t.shards[h%windowShards]
	now := t.now().UnixNano()
	w := int64(t.window)
	idx := now / w
	elapsed := float64(now-idx*w) / float64(w)

	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.keys[h]
	if e == nil {
		if len(sh.keys) >= t.perShard {
			sh.evict(sh.tail)
		}
		e = &windowEntry{key: h, idx: idx}
		sh.keys[h] = e
		sh.pushFront(e)
	} else {
		sh.moveFront(e)
		e.roll(idx)
	}
	est := float64(e.prev)*(1-elapsed) + float64(e.curr)
	if est+1 > float64(t.capacity) {
		return decision{limited: true, retryAfter: t.retryAfter(e, elapsed)}
	}
	e.curr++
	return decision{}
}

// roll advances the entry's windows to idx.
func (e *windowEntry) roll(idx int64) {
	switch {
	case e.idx == idx:
	case e.idx == idx-1:
		e.prev, e.curr, e.idx = e.curr, 0, idx
	default:
		e.prev, e.curr, e.idx = 0, 0, idx
	}
}

// retryAfter computes when one more event would fit, from the entry's
// windows and how far (0..1) the current window has run.
func (t *windowTable) retryAfter(e *windowEntry, elapsed float64) time.Duration {
	room := float64(t.capacity - 1)
	var frac float64 // in units of the window, from now
	if e.curr <= t.capacity-1 && e.prev > 0 {
		// Fits later in this window once enough of prev has slid out.
		g := 1 - (room-float64(e.curr))/float64(e.prev)
		frac = g - elapsed
	} else {
		// Must wait for the next window, then for curr to slide out.
		g := 0.0
		if e.curr > 0 {
			g = 1 - room/float64(e.curr)
		}
		frac = (1 - elapsed) + g
	}
	// Whole seconds, rounded up (Retry-After has second resolution); the
	// epsilon keeps float noise from adding a second.
	secs := math.Ceil(frac*t.window.Seconds() - 1e-6)
	if secs < 1 {
		secs = 1
	}
	return time.Duration(secs) * time.Second
}

func (sh *windowShard) pushFront(e *windowEntry) {
	e.older = sh.head
	e.newer = nil
	if sh.head != nil {
		sh.head.newer = e
	}
	sh.head = e
	if sh.tail == nil {
		sh.tail = e
	}
}

func (sh *windowShard) unlink(e *windowEntry) {
	if e.newer != nil {
		e.newer.older = e.older
	} else {
		sh.head = e.older
	}
	if e.older != nil {
		e.older.newer = e.newer
	} else {
		sh.tail = e.newer
	}
	e.newer, e.older = nil, nil
}

func (sh *windowShard) moveFront(e *windowEntry) {
	if sh.head == e {
		return
	}
	sh.unlink(e)
	sh.pushFront(e)
}

func (sh *windowShard) evict(e *windowEntry) {
	if e == nil {
		return
	}
	sh.unlink(e)
	delete(sh.keys, e.key)
}

// sweep drops keys whose previous and current windows are both over: their
// estimate is zero, so forgetting them changes no decision.
func (t *windowTable) sweep() {
	idx := t.now().UnixNano() / int64(t.window)
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for sh.tail != nil && sh.tail.idx < idx-1 {
			sh.evict(sh.tail)
		}
		sh.mu.Unlock()
	}
}

// len reports the number of keys held (for tests and metrics).
func (t *windowTable) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.keys)
		sh.mu.Unlock()
	}
	return n
}

func (t *windowTable) janitor(ctx context.Context) {
	defer close(t.done)
	// Sweeping every window/4 frees expired keys within 2.25 windows of
	// their last use; LRU order makes each sweep cost only what it frees.
	tick := time.NewTicker(t.window / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.sweep()
		}
	}
}

// Close stops the janitor; it is idempotent.
func (t *windowTable) Close() error {
	t.stopOnce.Do(func() {
		t.stop()
		<-t.done
	})
	return nil
}
