package policy

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestParseErrors parses every file in testdata/errors and compares the
// reported problems, one per line, with the file's .golden twin.
func TestParseErrors(t *testing.T) {
	files, _ := filepath.Glob("testdata/errors/*.*")
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".golden") {
			continue
		}
		n++
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := ParseFile(f)
			if err == nil {
				t.Fatal("no error")
			}
			var lines []string
			for _, e := range Errors(err) {
				if strings.Contains(e.Error(), "\n") {
					t.Errorf("error spans lines: %q", e)
				}
				lines = append(lines, e.Error())
			}
			got := strings.Join(lines, "\n") + "\n"
			golden := f + ".golden"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("errors differ\n--- got\n%s--- want\n%s", got, want)
			}
		})
	}
	if n < 5 {
		t.Fatalf("only %d error cases found", n)
	}
}

func TestValidateFiles(t *testing.T) {
	good := filepath.Join(t.TempDir(), "good.yaml")
	os.WriteFile(good, []byte("on_http_request:\n  - actions:\n      - type: t-record\n        config: {value: x}\n"), 0o644)
	if errs := ValidateFiles(good); len(errs) != 0 {
		t.Fatalf("good file: %v", errs)
	}
	errs := ValidateFiles(good, "testdata/errors/unknown_action.yaml", "testdata/nope.yaml")
	if len(errs) != 3 {
		t.Fatalf("got %d errors: %v", len(errs), errs)
	}
	if !strings.HasPrefix(errs[0].Error(), "testdata/errors/unknown_action.yaml:3:") {
		t.Errorf("first error: %v", errs[0])
	}
}

func TestParseValid(t *testing.T) {
	cases := map[string]string{
		"empty":      "",
		"null":       "~",
		"comments":   "# nothing\n",
		"emptyLists": "on_tcp_connect: []\non_http_request: []\non_http_response: []\n",
		"nullPhase":  "on_http_request:\n",
		"noActions":  "on_http_request:\n  - name: x\n    expressions: ['true']\n",
		"json":       `{"on_http_request":[{"name":"r","expressions":["req.method == 'GET'"],"actions":[{"type":"t-header","config":{"name":"X","value":1}}]}]}`,
		"oldFormat":  "inbound:\n  - actions: [{type: t-record, config: {value: in}}]\noutbound:\n  - expressions: ['res.status_code > 0']\n",
		"aliases":    "on_http_request: &r\n  - name: a\n    actions:\n      - &act {type: t-record, config: &c {value: v}}\non_http_response: *r\n",
		"anchors":    "x: &h {name: X, value: v}\non_http_request:\n  - actions:\n      - type: t-header\n        config: *h\n",
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(name+".yaml", []byte(src))
			if name == "anchors" {
				// Unknown top-level keys are errors even when they only hold anchors.
				if err == nil {
					t.Fatal("want unknown field error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestHashAndName(t *testing.T) {
	p := mustParse(t, "on_http_request: []\n")
	q := mustParse(t, "on_http_request: [] \n")
	if p.Hash() == q.Hash() || len(p.Hash()) != 12 || p.Name() != "test.yaml" || !p.Empty() {
		t.Fatalf("hash %q %q name %q", p.Hash(), q.Hash(), p.Name())
	}
}

// TestParseNode: an inline traffic_policy inside sluice's config file keeps
// the config file's positions.
func TestParseNode(t *testing.T) {
	src := []byte(`endpoints:
  - url: http://:8080
    traffic_policy:
      on_http_request:
        - expressions: ["req.nosuch == 1"]
  - url: http://:8081
    traffic_policy:
      on_http_request:
        - actions:
            - type: t-header
              config: {name: X-Inline, value: "${req.method}"}
`)
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	eps := doc.Content[0].Content[1].Content
	tp := func(i int) *yaml.Node { return eps[i].Content[3] }
	_, err := ParseNode("sluice.yaml", src, tp(0))
	if err == nil || err.Error() != `sluice.yaml:5:26: CEL: unknown variable "req.nosuch"` {
		t.Fatalf("got %v", err)
	}
	p, err := ParseNode("sluice.yaml", src, tp(1))
	if err != nil {
		t.Fatal(err)
	}
	h := NewPolicyHandle(p, Options{})
	defer h.Close()
	_, x := fixture()
	x.Res = nil
	if err := h.OnRequest(x); err != nil || x.Req.Header.Get("X-Inline") != "POST" {
		t.Fatalf("%v %v", err, x.Req.Header)
	}
	h.Done(x)
}
