// Package bench_test keeps the benchmark's sluice configs and policy valid
// as the config schema and the actions evolve: `make bench` runs rarely and
// would otherwise find out last.
package bench_test

import (
	"os"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/policy"
	_ "github.com/sluicehq/sluice/policy/actions"
)

// render fills the placeholders the way bench.sh does.
func render(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	root, err := os.Getwd() // .../bench
	if err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer(
		"@OUT@", t.TempDir(), "@ROOT@", strings.TrimSuffix(root, "/bench"),
		"@BACKEND_PORT@", "10001", "@BACKEND_TLS_PORT@", "10002",
		"@PORT@", "10003", "@TLS_PORT@", "10004",
		"@POLICY_PORT@", "10005", "@POLICY_TLS_PORT@", "10006")
	return []byte(r.Replace(string(b)))
}

func TestSluiceConfigsParse(t *testing.T) {
	for f, n := range map[string]int{"sluice.yaml": 2, "sluice-policy5.yaml": 4} {
		t.Run(f, func(t *testing.T) {
			c, err := config.Parse(f, render(t, f), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Endpoints) != n {
				t.Fatalf("endpoints = %d, want %d", len(c.Endpoints), n)
			}
			if strings.Contains(string(render(t, f)), "@") {
				t.Fatal("a placeholder is left that bench.sh does not fill")
			}
		})
	}
}

func TestPolicy5Loads(t *testing.T) {
	p, err := policy.ParseFile("policy5.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
}
