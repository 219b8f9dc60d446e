package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoHealthyUpstream is returned by Pick when every target has already
// been tried for this exchange, or (outside panic mode) every untried one
// is unhealthy while healthy ones were tried.
var ErrNoHealthyUpstream = errors.New("upstream: no healthy upstream")

// Balance policies accepted in Config.Balance.
const (
	RoundRobin    = "round_robin"
	LeastRequests = "least_requests"
	P2C           = "p2c"
)

// Passive defaults: MaxFails failed attempts within Window eject a target
// for Eject.
const (
	DefaultMaxFails = 3
	DefaultWindow   = 10 * time.Second
	DefaultEject    = 30 * time.Second
)

// Config describes one upstream pool.
type Config struct {
	// URLs lists the targets in any form ParseTarget accepts.
	URLs []string
	// Balance is RoundRobin (default when empty), LeastRequests or P2C.
	Balance string
	// HealthCheck enables active checks; nil means none.
	HealthCheck *HealthCheck
	// Passive configures ejection on connection failures; the zero value
	// means the defaults.
	Passive Passive
	// TLS is the client configuration for health checks of https targets
	// (RootCAs, InsecureSkipVerify…). ServerName is set per target. nil
	// means system roots. The proxy should pass the same configuration it
	// uses for its own upstream connections.
	TLS *tls.Config
}

// HealthCheck configures active checks.
type HealthCheck struct {
	// Path is the HTTP GET path (e.g. "/healthz"); 2xx and 3xx pass. Empty
	// means a TCP connect check. tcp:// targets are always TCP-checked.
	Path string
	// Interval between check rounds (default 10s) and Timeout of one check
	// (default 2s, capped at Interval).
	Interval, Timeout time.Duration
	// Healthy is the number of consecutive passes that bring a down target
	// back (default 1: recover fast, passive ejection guards against
	// flapping); Unhealthy the consecutive failures that take it down
	// (default 2: one lost probe is not an outage).
	Healthy, Unhealthy int
}

// Passive configures passive ejection: after MaxFails failed attempts
// (Pool.End with an error) within Window since the streak's first failure,
// the target is ejected for Eject. A successful attempt resets the streak.
type Passive struct {
	MaxFails      int
	Window, Eject time.Duration
	// Disabled turns passive ejection off.
	Disabled bool
}

// Pool is a balanced, health-checked set of Targets. Its methods are safe
// for concurrent use.
type Pool struct {
	targets []*Target
	balance string
	hc      *HealthCheck
	passive Passive
	tlsConf *tls.Config
	log     *slog.Logger

	rr atomic.Uint64 // round-robin cursor, also start offset for scans

	mu       sync.Mutex
	onChange func(t *Target, healthy bool)
	started  bool
	closed   bool
	cancel   context.CancelFunc // stops the checker; set by Start
	done     chan struct{}      // closed when the checker has exited
}

// New validates cfg and builds a Pool. Errors name the offending entry
// (urls[2], balance, health_check.interval…).
func New(cfg Config, log *slog.Logger) (*Pool, error) {
	if log == nil {
		log = slog.Default()
	}
	if len(cfg.URLs) == 0 {
		return nil, errors.New("upstream: no upstream URLs")
	}
	p := &Pool{balance: cfg.Balance, tlsConf: cfg.TLS, log: log}
	switch cfg.Balance {
	case "":
		p.balance = RoundRobin
	case RoundRobin, LeastRequests, P2C:
	default:
		return nil, fmt.Errorf("upstream: balance: unknown policy %q (want %s, %s or %s)", cfg.Balance, RoundRobin, LeastRequests, P2C)
	}
	seen := map[string]int{}
	for i, s := range cfg.URLs {
		t, err := ParseTarget(s)
		if err != nil {
			return nil, fmt.Errorf("upstream: urls[%d]: %w", i, err)
		}
		if j, dup := seen[t.String()]; dup {
			return nil, fmt.Errorf("upstream: urls[%d]: %s duplicates urls[%d]", i, t, j)
		}
		seen[t.String()] = i
		p.targets = append(p.targets, t)
	}
	if hc := cfg.HealthCheck; hc != nil {
		c := *hc
		if c.Interval < 0 || c.Timeout < 0 || c.Healthy < 0 || c.Unhealthy < 0 {
			return nil, errors.New("upstream: health_check: interval, timeout and thresholds must not be negative")
		}
		if c.Path != "" && c.Path[0] != '/' {
			return nil, fmt.Errorf("upstream: health_check.path: %q must start with /", c.Path)
		}
		if c.Interval == 0 {
			c.Interval = 10 * time.Second
		}
		if c.Timeout == 0 {
			c.Timeout = 2 * time.Second
		}
		c.Timeout = min(c.Timeout, c.Interval)
		if c.Healthy == 0 {
			c.Healthy = 1
		}
		if c.Unhealthy == 0 {
			c.Unhealthy = 2
		}
		p.hc = &c
	}
	ps := cfg.Passive
	if ps.MaxFails < 0 || ps.Window < 0 || ps.Eject < 0 {
		return nil, errors.New("upstream: passive: max_fails, window and eject must not be negative")
	}
	if ps.MaxFails == 0 {
		ps.MaxFails = DefaultMaxFails
	}
	if ps.Window == 0 {
		ps.Window = DefaultWindow
	}
	if ps.Eject == 0 {
		ps.Eject = DefaultEject
	}
	p.passive = ps
	return p, nil
}

// Targets returns the pool's targets in configuration order. The slice is
// shared: do not modify it.
func (p *Pool) Targets() []*Target { return p.targets }

// OnHealthChange registers fn to be told about every health transition
// (active check verdicts, passive ejection and its end). Call it before
// Start. fn must not block: it runs on the checker goroutine or, for
// passive ejection, on the request path. The end of a passive ejection is
// reported when the next Pick notices it, so an idle pool may report it
// late.
func (p *Pool) OnHealthChange(fn func(t *Target, healthy bool)) {
	p.mu.Lock()
	p.onChange = fn
	p.mu.Unlock()
}

// Pick chooses a target for one attempt, skipping those in tried (earlier
// attempts of the same exchange) and unhealthy ones.
//
// Panic mode (as in Envoy and nginx): when no target of the pool is
// healthy, Pick still returns an untried one rather than failing outright,
// because health information can be stale and a possibly-down upstream
// beats a certain 502. It returns ErrNoHealthyUpstream only when every
// target was tried, or when all healthy targets were tried and the rest
// are unhealthy.
func (p *Pool) Pick(tried []*Target) (*Target, error) {
	var now int64 // the clock is read only for an ejected target (healthyAt)
	if t := p.pick(tried, true, now); t != nil {
		return t, nil
	}
	for _, t := range p.targets {
		if p.healthyAt(t, now) {
			// Healthy ones exist but were all tried: no panic mode.
			return nil, ErrNoHealthyUpstream
		}
	}
	if t := p.pick(tried, false, now); t != nil {
		return t, nil
	}
	return nil, ErrNoHealthyUpstream
}

func (p *Pool) pick(tried []*Target, needHealthy bool, now int64) *Target {
	switch p.balance {
	case LeastRequests:
		return p.least(tried, needHealthy, now)
	case P2C:
		return p.p2c(tried, needHealthy, now)
	default:
		return p.roundRobin(tried, needHealthy, now)
	}
}

// eligible reports whether t may be picked for this attempt.
func (p *Pool) eligible(t *Target, tried []*Target, needHealthy bool, now int64) bool {
	for _, x := range tried {
		if x == t {
			return false
		}
	}
	return !needHealthy || p.healthyAt(t, now)
}

// healthyAt is Healthy with a caller-supplied clock; it also reports the
// end of a passive ejection once (the first time it is observed).
func (p *Pool) healthyAt(t *Target, now int64) bool {
	if t.down.Load() {
		return false
	}
	until := t.ejectedUntil.Load()
	if until == 0 {
		return true
	}
	if now == 0 {
		now = time.Now().UnixNano()
	}
	if now < until {
		return false
	}
	if t.ejectedUntil.CompareAndSwap(until, 0) {
		p.log.Info("upstream ejection ended", "upstream", t.String())
		p.notify(t, true)
	}
	return true
}

func (p *Pool) roundRobin(tried []*Target, needHealthy bool, now int64) *Target {
	n := uint64(len(p.targets))
	start := p.rr.Add(1) - 1
	for i := uint64(0); i < n; i++ {
		t := p.targets[(start+i)%n]
		if p.eligible(t, tried, needHealthy, now) {
			return t
		}
	}
	return nil
}

// least scans from a rotating offset so that ties spread evenly instead of
// always landing on the first target.
func (p *Pool) least(tried []*Target, needHealthy bool, now int64) *Target {
	n := uint64(len(p.targets))
	start := p.rr.Add(1) - 1
	var best *Target
	var bestLoad int64
	for i := uint64(0); i < n; i++ {
		t := p.targets[(start+i)%n]
		if !p.eligible(t, tried, needHealthy, now) {
			continue
		}
		if l := t.inflight.Load(); best == nil || l < bestLoad {
			best, bestLoad = t, l
		}
	}
	return best
}

// p2c samples two distinct targets and takes the less loaded one: nearly
// as good as least_requests at scale, without a full scan or herding on
// one momentarily idle target. Ineligible samples fall back to a scan.
func (p *Pool) p2c(tried []*Target, needHealthy bool, now int64) *Target {
	n := len(p.targets)
	if n == 1 {
		if t := p.targets[0]; p.eligible(t, tried, needHealthy, now) {
			return t
		}
		return nil
	}
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, b := p.targets[i], p.targets[j]
	okA, okB := p.eligible(a, tried, needHealthy, now), p.eligible(b, tried, needHealthy, now)
	switch {
	case okA && okB:
		if b.inflight.Load() < a.inflight.Load() {
			return b
		}
		return a
	case okA:
		return a
	case okB:
		return b
	}
	return p.least(tried, needHealthy, now)
}

// Begin marks the start of an exchange with t.
func (p *Pool) Begin(t *Target) { t.inflight.Add(1) }

// End marks the end of an exchange with t. A non-nil err means the
// upstream failed at the connection level (dial, TLS, reset, timeout) and
// counts toward passive ejection; nil resets the failure streak. HTTP
// error statuses are not failures here.
func (p *Pool) End(t *Target, err error) {
	t.inflight.Add(-1)
	if p.passive.Disabled {
		return
	}
	if err == nil {
		if t.fails.Load() != 0 {
			t.fails.Store(0)
		}
		return
	}
	now := time.Now().UnixNano()
	start := t.failStart.Load()
	var n int64
	if t.fails.Load() == 0 || now-start > int64(p.passive.Window) {
		// A new streak; racing failures may both start one, which only
		// makes ejection a little later.
		t.failStart.Store(now)
		t.fails.Store(1)
		n = 1
	} else {
		n = t.fails.Add(1)
	}
	if n < int64(p.passive.MaxFails) {
		return
	}
	until := t.ejectedUntil.Load()
	if until != 0 && now < until {
		return // already ejected
	}
	if t.ejectedUntil.CompareAndSwap(until, now+int64(p.passive.Eject)) {
		t.fails.Store(0)
		p.log.Warn("upstream ejected after failures", "upstream", t.String(),
			"fails", n, "for", p.passive.Eject, "err", err)
		if until == 0 {
			p.notify(t, false)
		}
	}
}

func (p *Pool) notify(t *Target, healthy bool) {
	p.mu.Lock()
	fn := p.onChange
	p.mu.Unlock()
	if fn != nil {
		fn(t, healthy)
	}
}

// Close stops the health checker (if started) and waits for it to exit.
// It is idempotent.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	if p.cancel != nil {
		p.cancel()
	}
	done := p.done
	p.mu.Unlock()
	if done != nil {
		<-done
	}
}
