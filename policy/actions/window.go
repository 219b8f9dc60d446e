package actions

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// windowTable is the counter store behind rate-limit: a sliding-window
// counter per bucket key. It keeps two fixed windows per key (the previous
// and the current one), each as a count plus the times of its first and last
// request, instead of a timestamp per request. The count over the last
// `rate` is estimated by spreading each window's requests evenly between its
// first and last one. Knowing the last one matters: the textbook estimate
// prev*(1-elapsed)+curr spreads them over the whole window and can refuse a
// client for almost two periods; with the span, requests older than `rate`
// never count, so Retry-After never exceeds `rate`.
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

// defaultMaxKeys bounds one rate-limit table's memory to roughly 15 MB
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
	key   uint64
	idx   int64 // index of the current window (unix nanos / window)
	prev  span  // requests of window idx-1
	curr  span  // requests of window idx
	newer *windowEntry
	older *windowEntry
}

// span is the accepted requests of one fixed window: how many, and the unix
// nanos of the first and the last.
type span struct {
	n           int64
	first, last int64
}

// inWindow estimates how many of the span's requests are in (lo, now]:
// all of them after lo, none before, and in between a share proportional to
// the part of [first, last] after lo.
func (s span) inWindow(lo int64) float64 {
	switch {
	case s.n == 0 || s.last <= lo:
		return 0
	case s.first > lo:
		return float64(s.n)
	}
	return float64(s.n) * float64(s.last-lo) / float64(s.last-s.first)
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
	if !t.fits(e, now) {
		return decision{limited: true, retryAfter: t.retryAfter(e, now)}
	}
	if e.curr.n == 0 {
		e.curr.first = now
	}
	e.curr.last = now
	e.curr.n++
	return decision{}
}

// fits reports whether one more request at now stays within capacity.
func (t *windowTable) fits(e *windowEntry, now int64) bool {
	lo := now - int64(t.window)
	return e.prev.inWindow(lo)+e.curr.inWindow(lo)+1 <= float64(t.capacity)
}

// roll advances the entry's windows to idx. A window two back is dropped
// whole: all its requests are older than one period.
func (e *windowEntry) roll(idx int64) {
	switch {
	case e.idx == idx:
	case e.idx == idx-1:
		e.prev, e.curr, e.idx = e.curr, span{}, idx
	default:
		e.prev, e.curr, e.idx = span{}, span{}, idx
	}
}

// retryAfter finds when one more request would fit if none came in
// between. The estimate only falls as time passes, and at the last
// request's time plus one period it is zero, so a bisection over that range
// finds the moment; it runs only for refused requests.
func (t *windowTable) retryAfter(e *windowEntry, now int64) time.Duration {
	lo, hi := now, e.curr.last
	if e.prev.last > hi {
		hi = e.prev.last
	}
	hi += int64(t.window)
	for hi-lo > int64(time.Millisecond) {
		mid := lo + (hi-lo)/2
		if t.fits(e, mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	// Whole seconds, rounded up (Retry-After has second resolution).
	secs := (hi - now + int64(time.Second) - 1) / int64(time.Second)
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
