package actions

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/policy"
)

// TestDocsExamplesLoad loads every complete policy (a ```yaml block that
// starts with a phase) in docs/actions.md, so the documentation cannot drift
// from what the actions accept.
func TestDocsExamplesLoad(t *testing.T) {
	src, err := os.ReadFile("../../docs/actions.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(src), -1)
	n := 0
	for i, b := range blocks {
		if !strings.HasPrefix(b[1], "on_") {
			continue
		}
		n++
		p, err := policy.Parse("docs/actions.md#example"+strconv.Itoa(i), []byte(b[1]))
		if err != nil {
			t.Errorf("example %d does not load: %v\n%s", i, err, b[1])
			continue
		}
		p.Close()
	}
	if n < 13 {
		t.Errorf("found %d policy examples, want one per action", n)
	}
}
