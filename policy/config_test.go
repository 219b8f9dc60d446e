package policy

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDecodeAllTypes(t *testing.T) {
	takeRecorded()
	src := `
on_http_request:
  - actions:
      - type: t-all
        config:
          s: 1
          b: true
          i: -5
          i64: 0x10
          u: 65535
          f: 2.5
          d: 1m30s
          l: [a, 2, true]
          m: {a: 1, b: 2}
          p: 7
          n: {a: x}
          np: {a: y}
          t: "${req.method}-${1 + 1}"
          tp: plain
          x: "req.url.path == '/p'"
          any: {k: [1, two]}
          tm: {h: "${req.host}"}
          e: embedded
`
	p := mustParse(t, src)
	_, x := fixture()
	x.Req.Path = "/p"
	if err := p.RunRequest(x); err != nil {
		t.Fatal(err)
	}
	got := takeRecorded()
	if len(got) != 1 {
		t.Fatalf("recorded %v", got)
	}
	cfg := got[0].(allTypes)
	seven := 7
	if cfg.S != "1" || !cfg.B || cfg.I != -5 || cfg.I64 != 16 || cfg.U != 65535 || cfg.F != 2.5 ||
		cfg.D != 90*time.Second || !reflect.DeepEqual(cfg.L, []string{"a", "2", "true"}) ||
		!reflect.DeepEqual(cfg.M, map[string]int{"a": 1, "b": 2}) || *cfg.P != seven ||
		cfg.N.A != "x" || cfg.NP.A != "y" || cfg.E != "embedded" {
		t.Fatalf("decoded %+v", cfg)
	}
	if !reflect.DeepEqual(cfg.Any, map[string]any{"k": []any{1, "two"}}) {
		t.Fatalf("any = %#v", cfg.Any)
	}
	s := &State{Phase: OnHTTPRequest, X: x, Conn: x.Conn}
	if v, err := cfg.T.Eval(s); err != nil || v != "POST-2" {
		t.Fatalf("template = %q, %v", v, err)
	}
	if v, ok := cfg.TP.Static(); !ok || v != "plain" {
		t.Fatalf("static = %q %v", v, ok)
	}
	if ok, err := cfg.X.EvalBool(s); err != nil || !ok {
		t.Fatalf("expr = %v %v", ok, err)
	}
	tm := cfg.TM["h"]
	if v, err := tm.Eval(s); err != nil || v != "app.example.com:8443" {
		t.Fatalf("tm = %q %v", v, err)
	}
}

func TestDecodeDurationSeconds(t *testing.T) {
	var v struct {
		D time.Duration `yaml:"d"`
	}
	c := configFrom(t, "d: 30")
	if err := c.Decode(&v); err != nil || v.D != 30*time.Second {
		t.Fatalf("%v %v", v.D, err)
	}
}

func TestDecodeNilNode(t *testing.T) {
	c := &Config{Type: "x"}
	v := struct {
		A string `yaml:"a"`
	}{A: "default"}
	if err := c.Decode(&v); err != nil || v.A != "default" {
		t.Fatalf("%v %v", v, err)
	}
	if err := c.Decode(v); err == nil {
		t.Fatal("non-pointer accepted")
	}
}

func TestDecodeErrorsOutsideEngine(t *testing.T) {
	// An action's own tests build Configs by hand: errors still have a
	// position, in a file named "config".
	c := configFrom(t, "a: [1]\nzz: 2\n")
	var v struct {
		A string `yaml:"a"`
	}
	err := c.Decode(&v)
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		`config:1:4: demo: config.a: expected a string, got a list`,
		`config:2:1: demo: unknown field "zz" in demo config (known: a)`,
	}
	if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
	if _, err := c.CompileExpr("1 +", nil); err == nil {
		t.Fatal("bad CEL accepted")
	}
	x, err := c.CompileExpr("'a' + 'b'", nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := x.EvalString(&State{}); err != nil || v != "ab" {
		t.Fatalf("%q %v", v, err)
	}
}

func configFrom(t *testing.T, src string) *Config {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	return &Config{Type: "demo", Node: doc.Content[0]}
}
