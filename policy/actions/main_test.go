package actions

import (
	"fmt"
	"os"
	"testing"
)

// TestMain fails the run when a rate-limit table outlived its last user: a
// table left behind is a janitor goroutine and its memory leaked for the
// life of the process, which is what Close on a drained policy must avoid.
func TestMain(m *testing.M) {
	code := m.Run()
	sharedMu.Lock()
	left := len(sharedTables)
	sharedMu.Unlock()
	if code == 0 && left > 0 {
		fmt.Fprintf(os.Stderr, "%d rate-limit tables still open after the tests: an action or policy was not closed\n", left)
		code = 1
	}
	os.Exit(code)
}
