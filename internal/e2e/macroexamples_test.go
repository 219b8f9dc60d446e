package e2e

// The examples of ngrok's macro reference evaluated through the listener
// (see testdata/ngrok-macro-examples.yaml).

import (
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type macroExample struct {
	Expr   string `yaml:"expr"`
	Sluice string `yaml:"sluice"` // "" = true as the page says; false, error, load_error
	Note   string `yaml:"note"`
	// Headers are sent with the request (pairs as a map).
	Headers map[string]string `yaml:"headers"`
}

func TestNgrokMacroExamples(t *testing.T) {
	raw, err := os.ReadFile("testdata/ngrok-macro-examples.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var examples []macroExample
	if err := yaml.Unmarshal(raw, &examples); err != nil {
		t.Fatal(err)
	}
	var differ []string
	for _, ex := range examples {
		t.Run(ex.Expr, func(t *testing.T) {
			want := ex.Sluice
			if want == "" {
				want = "true"
			} else if ex.Note != "" {
				differ = append(differ, ex.Expr+": "+ex.Note)
			}
			pol, err := yaml.Marshal(map[string]any{"on_http_request": []any{
				map[string]any{"expressions": []string{ex.Expr},
					"actions": []any{map[string]any{"type": "custom-response", "config": map[string]any{"body": "true"}}}},
				map[string]any{"actions": []any{map[string]any{"type": "custom-response", "config": map[string]any{"body": "false"}}}},
			}})
			if err != nil {
				t.Fatal(err)
			}
			if err := loadPolicy(t, "macro.yaml", string(pol)); err != nil {
				if want != "load_error" {
					t.Fatalf("does not load: %v", err)
				}
				return
			}
			if want == "load_error" {
				t.Fatalf("loads now; the expectation says load_error (%s)", ex.Note)
			}
			e := start(t, ep{URL: "http://app.test", Policy: string(pol)})
			var h []string
			for k, v := range ex.Headers {
				h = append(h, k, v)
			}
			r := get(t, e.client(), "http://app.test/", h...)
			got := r.Body
			if r.Status >= 500 {
				got = "error"
			}
			if got != want {
				t.Fatalf("got %s (status %d), want %s", got, r.Status, want)
			}
		})
	}
	t.Logf("%d examples; where sluice differs from the page:\n%s", len(examples), strings.Join(differ, "\n"))
}
