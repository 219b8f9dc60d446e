package actions

import (
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/policy"
)

func TestSetVars(t *testing.T) {
	a := mustBuild(t, "set-vars", policy.OnHTTPRequest, `
vars:
  - sample_string: bar
  - sample_double: 1.5
  - sample_bool: true
  - sample_null: null
  - sample_list: [1, 2, 3]
  - sample_map: {key: value}
  - sample_nested_map: {key: [value1, value2]}
  - greeting: Your IP is ${conn.client_ip}!
  - sample_int: ${int(50.5)}
  - sample_uint: ${uint(1.5) + 10u}
  - from_earlier: ${vars.sample_list[1] + 40}
  - dyn_map: {ip: "${conn.client_ip}", n: "${1 + 1}"}
`)
	s := newState(t, policy.OnHTTPRequest, "GET", "https://example.com/", "192.0.2.1:1")
	if err := a.Run(s); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"sample_string":     "bar",
		"sample_double":     1.5,
		"sample_bool":       true,
		"sample_null":       nil,
		"sample_list":       []any{int64(1), int64(2), int64(3)},
		"sample_map":        map[string]any{"key": "value"},
		"sample_nested_map": map[string]any{"key": []any{"value1", "value2"}},
		"greeting":          "Your IP is 192.0.2.1!",
		"sample_int":        int64(50),
		"sample_uint":       uint64(11),
		"from_earlier":      int64(42),
		"dyn_map":           map[string]any{"ip": "192.0.2.1", "n": int64(2)},
	}
	for k, w := range want {
		got, ok := s.Var(k)
		if !ok || !reflect.DeepEqual(got, w) {
			t.Errorf("vars.%s = %#v, want %#v", k, got, w)
		}
	}
	// Later expressions see the values with their types.
	if got := result(t, s, "vars.sample_double * 2.0 == 3.0 && vars.sample_nested_map.key[1] == 'value2'"); got != true {
		t.Errorf("CEL view of vars: %v", got)
	}
}

func TestSetVarsMapForm(t *testing.T) {
	a := mustBuild(t, "set-vars", policy.OnTCPConnect, `vars: {a: 1, b: "${vars.a + 1}"}`)
	s := newState(t, policy.OnTCPConnect, "", "tcp://x:1", "127.0.0.1:1")
	if err := a.Run(s); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Var("b"); v != int64(2) {
		t.Errorf("b = %#v", v)
	}
	if s.Conn.Vars["b"] != int64(2) {
		t.Errorf("on_tcp_connect vars not on the connection: %v", s.Conn.Vars)
	}
}

func TestSetVarsConfigErrors(t *testing.T) {
	for _, tt := range []struct{ config, want string }{
		{``, `missing required field "vars"`},
		{`vars: []`, "at least one variable"},
		{`vars: [{a: 1, b: 2}]`, "vars[0]: each entry must be a map with exactly one"},
		{`vars: [x]`, "vars[0]"},
		{`vars: x`, "expected a list"},
		{`vars: [{a: "${undefined_thing}"}]`, "undefined_thing"},
	} {
		_, err := build(t, "set-vars", policy.OnHTTPRequest, tt.config)
		wantErr(t, err, tt.want)
	}
}
