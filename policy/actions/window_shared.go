package actions

import (
	"strconv"
	"strings"
	"sync"
	"time"
)

// Rate-limit tables are shared by identity, like nginx's limit_req zones:
// two rate-limit actions with the same name, capacity, rate and bucket_key
// count into the same table. That is what keeps counters across a policy
// reload: the new version's action is built (and takes a reference) before
// the old version is drained and closed (and drops its reference), so
// clients cannot reset their limits by waiting for a config change.

var (
	sharedMu     sync.Mutex
	sharedTables = map[string]*sharedTable{}
)

type sharedTable struct {
	*windowTable
	refs int
	key  string
}

// acquireTable returns the table for the identity, creating it on first use.
func acquireTable(name string, capacity int64, rate time.Duration, bucketKeys []string) *sharedTable {
	key := strings.Join(append([]string{name, strconv.FormatInt(capacity, 10), rate.String()}, bucketKeys...), "\x00")
	sharedMu.Lock()
	defer sharedMu.Unlock()
	t := sharedTables[key]
	if t == nil {
		t = &sharedTable{windowTable: newWindowTable(rate, capacity, 0), key: key}
		sharedTables[key] = t
	}
	t.refs++
	return t
}

// release drops one reference; the last one stops the table's janitor.
func (t *sharedTable) release() error {
	sharedMu.Lock()
	t.refs--
	last := t.refs == 0
	if last {
		delete(sharedTables, t.key)
	}
	sharedMu.Unlock()
	if last {
		return t.windowTable.Close()
	}
	return nil
}
