package actions

import (
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/policy"
)

// TestExamplePoliciesValidate loads every policy in examples/policies: the
// examples are documentation, and documentation that does not load is worse
// than none.
func TestExamplePoliciesValidate(t *testing.T) {
	files, err := filepath.Glob("../../examples/policies/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example policies found: %v", err)
	}
	for _, f := range files {
		p, err := policy.ParseFile(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if p.Empty() {
			t.Errorf("%s: no rules", f)
		}
		p.Close()
	}
}
