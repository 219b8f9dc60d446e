package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// backends starts n real HTTP servers on loopback and returns their URLs.
func backends(t *testing.T, n int) []string {
	t.Helper()
	var urls []string
	for i := range n {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, i)
		}))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	return urls
}

func newPool(t *testing.T, cfg Config) *Pool {
	t.Helper()
	p, err := New(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func counts(t *testing.T, p *Pool, picks int, hold bool) map[*Target]int {
	t.Helper()
	got := map[*Target]int{}
	for range picks {
		tg, err := p.Pick(nil)
		if err != nil {
			t.Fatal(err)
		}
		got[tg]++
		if hold {
			p.Begin(tg) // keeps it busy, as a long request would
		}
	}
	return got
}

func TestRoundRobinIsEven(t *testing.T) {
	p := newPool(t, Config{URLs: backends(t, 3)})
	got := counts(t, p, 300, false)
	for _, tg := range p.Targets() {
		if got[tg] != 100 {
			t.Errorf("%s picked %d times, want 100", tg, got[tg])
		}
	}
}

func TestLeastRequestsPrefersIdle(t *testing.T) {
	p := newPool(t, Config{URLs: backends(t, 3), Balance: LeastRequests})
	ts := p.Targets()
	for range 5 {
		p.Begin(ts[0])
		p.Begin(ts[2])
	}
	for range 10 {
		if tg, _ := p.Pick(nil); tg != ts[1] {
			t.Fatalf("picked %s with %d in flight, want idle %s", tg, tg.InFlight(), ts[1])
		}
	}
	// Holding every pick keeps the load level: 30 picks over 3 idle
	// targets end with 10 each.
	for range 5 {
		p.End(ts[0], nil)
		p.End(ts[2], nil)
	}
	got := counts(t, p, 30, true)
	for _, tg := range ts {
		if got[tg] != 10 || tg.InFlight() != 10 {
			t.Errorf("%s: %d picks, %d in flight, want 10", tg, got[tg], tg.InFlight())
		}
	}
}

func TestP2CBalancesLoad(t *testing.T) {
	p := newPool(t, Config{URLs: backends(t, 4), Balance: P2C})
	// With every pick held, two-choices keeps the spread tight: each
	// target ends near 100; a random pick would vary far more.
	got := counts(t, p, 400, true)
	for _, tg := range p.Targets() {
		if got[tg] < 80 || got[tg] > 120 {
			t.Errorf("%s picked %d times of 400, want about 100", tg, got[tg])
		}
	}
	// A heavily loaded target is never chosen over an idle one it is
	// compared with, so with 2 targets the idle one always wins.
	p2 := newPool(t, Config{URLs: backends(t, 2), Balance: P2C})
	busy, idle := p2.Targets()[0], p2.Targets()[1]
	p2.Begin(busy)
	for range 20 {
		if tg, _ := p2.Pick(nil); tg != idle {
			t.Fatal("p2c picked the busy target of two")
		}
	}
}

func TestPickSkipsTried(t *testing.T) {
	for _, bal := range []string{RoundRobin, LeastRequests, P2C} {
		t.Run(bal, func(t *testing.T) {
			p := newPool(t, Config{URLs: backends(t, 3), Balance: bal})
			var tried []*Target
			for range 3 {
				tg, err := p.Pick(tried)
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range tried {
					if x == tg {
						t.Fatalf("picked %s twice", tg)
					}
				}
				tried = append(tried, tg)
			}
			if _, err := p.Pick(tried); !errors.Is(err, ErrNoHealthyUpstream) {
				t.Fatalf("all tried: err = %v", err)
			}
		})
	}
}

// refused returns a loopback address with nothing listening.
func refused(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// attempt does what the proxy does: pick, dial, record the outcome.
func attempt(t *testing.T, p *Pool) (*Target, error) {
	t.Helper()
	tg, err := p.Pick(nil)
	if err != nil {
		return nil, err
	}
	p.Begin(tg)
	c, err := net.Dial(tg.Network, tg.Addr)
	if err == nil {
		c.Close()
	}
	p.End(tg, err)
	return tg, err
}

type change struct {
	t       *Target
	healthy bool
}

func watchChanges(p *Pool) chan change {
	ch := make(chan change, 16)
	p.OnHealthChange(func(t *Target, healthy bool) { ch <- change{t, healthy} })
	return ch
}

func waitChange(t *testing.T, ch chan change, want *Target, healthy bool) {
	t.Helper()
	select {
	case c := <-ch:
		if c.t != want || c.healthy != healthy {
			t.Fatalf("health change %s→%v, want %s→%v", c.t, c.healthy, want, healthy)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no health change %s→%v", want, healthy)
	}
}

func TestPassiveEjectionAndRecovery(t *testing.T) {
	dead := refused(t)
	p := newPool(t, Config{
		URLs:    []string{backends(t, 1)[0], dead},
		Passive: Passive{MaxFails: 2, Window: time.Minute, Eject: 100 * time.Millisecond},
	})
	changes := watchChanges(p)
	bad := p.Targets()[1]

	var fails int
	for range 4 {
		if _, err := attempt(t, p); err != nil {
			fails++
		}
	}
	if fails != 2 || bad.Healthy() {
		t.Fatalf("after 2 failed dials: fails=%d healthy=%v, want ejected", fails, bad.Healthy())
	}
	waitChange(t, changes, bad, false)
	for range 10 {
		if tg, err := attempt(t, p); err != nil || tg == bad {
			t.Fatalf("ejected target picked (%v)", err)
		}
	}
	// After Eject it is tried again (and here fails again).
	deadline := time.Now().Add(5 * time.Second)
	for !bad.Healthy() {
		if time.Now().After(deadline) {
			t.Fatal("ejection never ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var sawBad bool
	for range 4 {
		if tg, _ := attempt(t, p); tg == bad {
			sawBad = true
		}
	}
	if !sawBad {
		t.Fatal("target not tried after its ejection ended")
	}
	waitChange(t, changes, bad, true)
}

func TestPassiveStreakResetAndWindow(t *testing.T) {
	p := newPool(t, Config{URLs: []string{"8080"}, Passive: Passive{MaxFails: 3, Window: time.Hour, Eject: time.Hour}})
	tg := p.Targets()[0]
	boom := errors.New("connect: refused")
	for range 10 { // fail, fail, ok: the streak never reaches 3
		p.Begin(tg)
		p.End(tg, boom)
		p.Begin(tg)
		p.End(tg, boom)
		p.Begin(tg)
		p.End(tg, nil)
	}
	if !tg.Healthy() || tg.InFlight() != 0 {
		t.Fatalf("healthy=%v inflight=%d", tg.Healthy(), tg.InFlight())
	}

	// Failures spread wider than Window do not add up.
	p2 := newPool(t, Config{URLs: []string{"8080"}, Passive: Passive{MaxFails: 2, Window: time.Nanosecond, Eject: time.Hour}})
	tg2 := p2.Targets()[0]
	for range 5 {
		p2.Begin(tg2)
		time.Sleep(time.Microsecond)
		p2.End(tg2, boom)
	}
	if !tg2.Healthy() {
		t.Fatal("failures outside the window ejected the target")
	}

	p3 := newPool(t, Config{URLs: []string{"8080"}, Passive: Passive{Disabled: true}})
	tg3 := p3.Targets()[0]
	for range 10 {
		p3.Begin(tg3)
		p3.End(tg3, boom)
	}
	if !tg3.Healthy() {
		t.Fatal("passive ejection disabled but target ejected")
	}
}

func TestPanicModeWhenAllDown(t *testing.T) {
	p := newPool(t, Config{
		URLs:    []string{refused(t), refused(t)},
		Passive: Passive{MaxFails: 1, Eject: time.Hour},
	})
	for range 2 {
		attempt(t, p)
	}
	a, b := p.Targets()[0], p.Targets()[1]
	if a.Healthy() || b.Healthy() {
		t.Fatal("both should be ejected")
	}
	// All down: Pick still offers each untried target once.
	first, err := p.Pick(nil)
	if err != nil {
		t.Fatalf("panic mode: %v", err)
	}
	second, err := p.Pick([]*Target{first})
	if err != nil || second == first {
		t.Fatalf("panic mode second pick: %v, %v", second, err)
	}
	if _, err := p.Pick([]*Target{a, b}); !errors.Is(err, ErrNoHealthyUpstream) {
		t.Fatalf("everything tried: %v", err)
	}
}

func TestNoPanicWhileSomeHealthy(t *testing.T) {
	p := newPool(t, Config{
		URLs:    []string{backends(t, 1)[0], refused(t)},
		Passive: Passive{MaxFails: 1, Eject: time.Hour},
	})
	good, bad := p.Targets()[0], p.Targets()[1]
	p.Begin(bad)
	p.End(bad, errors.New("refused"))
	if _, err := p.Pick([]*Target{good}); !errors.Is(err, ErrNoHealthyUpstream) {
		t.Fatalf("healthy target tried, rest ejected: err = %v, want ErrNoHealthyUpstream", err)
	}
}

func TestConcurrentPickBeginEnd(t *testing.T) {
	p := newPool(t, Config{URLs: backends(t, 3), Balance: P2C})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 500 {
				tg, err := p.Pick(nil)
				if err != nil {
					t.Error(err)
					return
				}
				p.Begin(tg)
				var e error
				if (i+j)%7 == 0 {
					e = errors.New("x")
				}
				p.End(tg, e)
			}
		})
	}
	wg.Wait()
	for _, tg := range p.Targets() {
		if tg.InFlight() != 0 {
			t.Errorf("%s in flight %d after all ended", tg, tg.InFlight())
		}
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	for _, bal := range []string{RoundRobin, LeastRequests, P2C} {
		p := newPool(t, Config{URLs: []string{"1", "2", "3"}, Balance: bal})
		tried := []*Target{p.Targets()[0]}
		allocs := testing.AllocsPerRun(100, func() {
			tg, _ := p.Pick(tried)
			p.Begin(tg)
			p.End(tg, nil)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per pick", bal, allocs)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	for _, bal := range []string{RoundRobin, LeastRequests, P2C} {
		b.Run(bal, func(b *testing.B) {
			p, _ := New(Config{URLs: []string{"1", "2", "3", "4", "5", "6", "7", "8"}, Balance: bal}, quiet)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					tg, _ := p.Pick(nil)
					p.Begin(tg)
					p.End(tg, nil)
				}
			})
		})
	}
}

func TestCloseIdempotent(t *testing.T) {
	p := newPool(t, Config{URLs: []string{"8080"}, HealthCheck: &HealthCheck{Interval: time.Hour}})
	p.Start(context.Background())
	p.Start(context.Background()) // no second checker
	p.Close()
	p.Close()
	p.Start(context.Background()) // after Close: no-op, no leak
}
