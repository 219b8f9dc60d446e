package proxy

import (
	"net"
	"testing"
	"time"
)

// deadlineConn records the read deadlines set on it.
type deadlineConn struct {
	net.Conn
	set []time.Time
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.set = append(c.set, t)
	return nil
}

func TestLazyDeadline(t *testing.T) {
	c := &deadlineConn{}
	var l lazyDeadline
	const d = 640 * time.Millisecond // slack d/64 = 10ms

	before := time.Now()
	l.arm(c, d)
	if len(c.set) != 1 {
		t.Fatalf("first arm set %d deadlines, want 1", len(c.set))
	}
	if got := c.set[0]; got.Before(before.Add(d)) || got.After(time.Now().Add(d+10*time.Millisecond)) {
		t.Fatalf("deadline %v from now, want between d and d+slack", got.Sub(before))
	}

	l.arm(c, d) // within the slack: the armed deadline still covers it
	if len(c.set) != 1 {
		t.Fatalf("an arm within the slack set a deadline again")
	}

	time.Sleep(15 * time.Millisecond) // past the slack: now+d is beyond it
	now := time.Now()
	l.arm(c, d)
	if len(c.set) != 2 || c.set[1].Before(now.Add(d)) {
		t.Fatalf("after the slack: deadlines %v, want a second one at least d from now", c.set)
	}

	l.reset() // another deadline was set: the next arm must set its own
	l.arm(c, d)
	if len(c.set) != 3 {
		t.Fatalf("arm after reset set no deadline")
	}

	// A longer timeout's slack is capped at a second.
	var long lazyDeadline
	start := time.Now()
	long.arm(c, time.Hour)
	if got := c.set[3].Sub(start); got < time.Hour || got > time.Hour+time.Second+50*time.Millisecond {
		t.Fatalf("1h timeout armed %v from now, want 1h to 1h+1s", got)
	}
}
