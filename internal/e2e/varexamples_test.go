package e2e

// The example expression of each variable in ngrok's variable reference,
// loaded as a rule of its phase: the names and types sluice declares must
// accept what ngrok documents.

import (
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type varExample struct {
	Source string `yaml:"source"`
	Phase  string `yaml:"phase"`
	Expr   string `yaml:"expr"`
	Want   string `yaml:"want"` // loads, load_error, missing
	Note   string `yaml:"note"`
}

func TestNgrokVariableExamplesLoad(t *testing.T) {
	raw, err := os.ReadFile("testdata/ngrok-variable-examples.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var examples []varExample
	if err := yaml.Unmarshal(raw, &examples); err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, ex := range examples {
		t.Run(ex.Expr, func(t *testing.T) {
			pol, err := yaml.Marshal(map[string]any{ex.Phase: []any{map[string]any{
				"expressions": []string{ex.Expr},
				"actions":     []any{map[string]any{"type": "log", "config": map[string]any{"metadata": map[string]any{"m": "x"}}}},
			}}})
			if err != nil {
				t.Fatal(err)
			}
			err = loadPolicy(t, "example.yaml", string(pol))
			switch ex.Want {
			case "loads":
				if err != nil {
					t.Errorf("%s: %v", ex.Source, err)
				}
			case "load_error", "missing":
				if err == nil {
					t.Errorf("%s: loads now; update want (was %s: %s)", ex.Source, ex.Want, ex.Note)
				} else if !strings.Contains(err.Error(), "example.yaml:") {
					t.Errorf("%s: error without a position: %v", ex.Source, err)
				}
				if ex.Want == "missing" {
					missing = append(missing, ex.Note)
				}
			default:
				t.Fatalf("want %q: use loads, load_error or missing", ex.Want)
			}
		})
	}
	t.Logf("%d documented examples; not declared by sluice yet: %s", len(examples), strings.Join(missing, "; "))
}
