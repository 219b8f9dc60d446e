package actions

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/policy"
)

// RateLimit is the `rate-limit` action: it counts requests per bucket over a
// sliding window and answers 429 Too Many Requests, with a Retry-After
// header, once a bucket is over capacity.
//
//	actions:
//	  - type: rate-limit
//	    config:
//	      name: api per key
//	      algorithm: sliding_window
//	      capacity: 100
//	      rate: 60s
//	      bucket_key:
//	        - getReqHeader('x-api-key')
//
// name (string, required, < 1024 characters): identifies the limit.
// algorithm (required): sliding_window, the only one.
// capacity (integer, required, 1 to 2,000,000,000): requests allowed per
// rate period and bucket.
// rate (duration, required, 60s to 24h, a multiple of 10s): the period.
// bucket_key (list of CEL expressions, required, 1-10): each request's
// values form its bucket; e.g. conn.client_ip, req.host,
// getReqHeader('x-api-key'). Lists (getReqHeader returns one) are joined.
// enforce (boolean, default true): false only records the result variables.
//
// The window is sliding: requests of the last `rate` are counted from two
// fixed windows, each known by its count and the times of its first and
// last request, so a refused client can always retry within `rate`
// (Retry-After is at most `rate`). Refused requests do not count. Counters live in this sluice process, in a
// table shared by every rate-limit action with the same name, capacity,
// rate and bucket_key (so they survive a policy reload, and two endpoints
// may share a limit on purpose). Memory is bounded: idle buckets are
// dropped, and beyond 131072 live buckets the least recently used is
// forgotten. Result variables:
// actions.ngrok.rate_limit.bucket_key, .limited, .error.code, .error.message.
type RateLimit struct {
	Name      string         `yaml:"name"`
	Enforce   *bool          `yaml:"enforce"`
	Algorithm string         `yaml:"algorithm"`
	Capacity  int64          `yaml:"capacity"`
	Rate      time.Duration  `yaml:"rate"`
	BucketKey []*policy.Expr `yaml:"bucket_key"`

	enforce bool
	table   *sharedTable
	once    sync.Once
}

func newRateLimit(c *policy.Config) (policy.Action, error) {
	a := &RateLimit{}
	if err := c.Decode(a); err != nil {
		return nil, err
	}
	for _, f := range []string{"name", "algorithm", "capacity", "rate", "bucket_key"} {
		if !hasField(c.Node, f) {
			return nil, c.Errorf(nil, "missing required field %q", f)
		}
	}
	if a.Name == "" || len(a.Name) >= 1024 {
		return nil, c.Errorf(fieldNode(c.Node, "name"), "name: must be 1 to 1023 characters")
	}
	if a.Algorithm != "sliding_window" {
		return nil, c.Errorf(fieldNode(c.Node, "algorithm"), "algorithm: %q is not supported (want sliding_window)", a.Algorithm)
	}
	if a.Capacity < 1 || a.Capacity > 2_000_000_000 {
		return nil, c.Errorf(fieldNode(c.Node, "capacity"), "capacity: %d is out of range (1 to 2000000000)", a.Capacity)
	}
	if a.Rate < time.Minute || a.Rate > 24*time.Hour || a.Rate%(10*time.Second) != 0 {
		n := fieldNode(c.Node, "rate")
		return nil, c.Errorf(n, "rate: %q must be a multiple of 10s between 60s and 24h", n.Value)
	}
	if len(a.BucketKey) == 0 || len(a.BucketKey) > 10 {
		return nil, c.Errorf(fieldNode(c.Node, "bucket_key"), "bucket_key: want 1 to 10 expressions, got %d", len(a.BucketKey))
	}
	for i, e := range a.BucketKey {
		if e == nil {
			return nil, c.Errorf(fieldNode(c.Node, "bucket_key"), "bucket_key[%d]: empty expression", i)
		}
	}
	a.enforce = a.Enforce == nil || *a.Enforce
	srcs := make([]string, len(a.BucketKey))
	for i, e := range a.BucketKey {
		srcs[i] = e.Source()
	}
	a.table = acquireTable(a.Name, a.Capacity, a.Rate, srcs)
	return a, nil
}

// Run counts the request in its bucket and refuses it when over capacity.
func (a *RateLimit) Run(s *policy.State) error {
	if s.X == nil {
		return nil
	}
	key, shown, err := a.bucket(s)
	if err != nil {
		s.SetResult("rate_limit", map[string]any{
			"bucket_key": "", "limited": false,
			"error": map[string]any{"code": "ERR_RATE_LIMIT_BUCKET_KEY", "message": err.Error()},
		})
		return err
	}
	d := a.table.take(key)
	s.SetResult("rate_limit", map[string]any{"bucket_key": shown, "limited": d.limited})
	if !d.limited || !a.enforce {
		return nil
	}
	h := http.Header{}
	h.Set("Retry-After", strconv.FormatInt(int64(d.retryAfter/time.Second), 10))
	s.X.Res = respond(http.StatusTooManyRequests, h, "")
	return nil
}

// bucket evaluates the bucket_key expressions into the table key and the
// text shown in the result variable. In the key each part is prefixed with
// its length, so ("a,b","c") and ("a","b,c") stay different buckets.
func (a *RateLimit) bucket(s *policy.State) (key, shown string, err error) {
	var k, sh strings.Builder
	for i, e := range a.BucketKey {
		v, err := e.Eval(s)
		if err != nil {
			return "", "", fmt.Errorf("bucket_key[%d]: %w", i, err)
		}
		var part strings.Builder
		writeKeyPart(&part, v)
		if i > 0 {
			sh.WriteByte(',')
		}
		k.WriteString(strconv.Itoa(part.Len()))
		k.WriteByte(':')
		k.WriteString(part.String())
		sh.WriteString(part.String())
	}
	return k.String(), sh.String(), nil
}

func writeKeyPart(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
	case string:
		b.WriteString(x)
	case []string:
		for i, p := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			writeKeyPart(b, p)
		}
	case []any:
		for i, p := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			writeKeyPart(b, p)
		}
	case fmt.Stringer:
		writeKeyPart(b, x.String())
	default:
		writeKeyPart(b, fmt.Sprint(x))
	}
}

// Close releases the counter table once the policy version is drained; the
// table lives on while a newer version's identical action still uses it.
func (a *RateLimit) Close() error {
	var err error
	a.once.Do(func() { err = a.table.release() })
	return err
}

func init() {
	policy.Register(policy.Spec{
		Type:   "rate-limit",
		Phases: []policy.Phase{policy.OnHTTPRequest},
		New:    newRateLimit,
	})
}

var (
	_ policy.Action = (*RateLimit)(nil)
	_ policy.Closer = (*RateLimit)(nil)
)
