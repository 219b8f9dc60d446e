package policy

import (
	"reflect"
	"strings"
	"testing"
)

func TestTemplates(t *testing.T) {
	_, x := fixture()
	x.Vars = map[string]any{"n": int64(3), "list": []any{"a", int64(1)}}
	cases := []struct {
		src      string
		str      string
		val      any
		isStatic bool
	}{
		{"plain", "plain", "plain", true},
		{"", "", "", true},
		{"$${not} interpolated", "${not} interpolated", "${not} interpolated", true},
		{"${req.method}", "POST", "POST", false},
		{"${1 + 2}", "3", int64(3), false},
		{"${1.5}", "1.5", 1.5, false},
		{"${true}", "true", true, false},
		{"${[1, 'a']}", `[1,"a"]`, []any{int64(1), "a"}, false},
		{"${{'k': 'v'}}", `{"k":"v"}`, map[string]any{"k": "v"}, false},
		{"${vars.n * 2}", "6", int64(6), false},
		{"${vars.list}", `["a",1]`, []any{"a", int64(1)}, false},
		{"ip=${conn.client_ip} path=${req.url.path}", "ip=203.0.113.7 path=/api/v1/a b", "ip=203.0.113.7 path=/api/v1/a b", false},
		{"${'}'} and ${'{'}", "} and {", "} and {", false},
		{"a ${ {'x': {'y': 1}}.x.y } b", "a 1 b", "a 1 b", false},
		{"${req.url.query_params['q']}", `["1","2"]`, []any{"1", "2"}, false},
		{"$ {not} $x ${'$'}", "$ {not} $x $", "$ {not} $x $", false},
	}
	comp := newCompiler("t.yaml", nil)
	for _, tc := range cases {
		t.Run(tc.src, func(t *testing.T) {
			tp, err := comp.template(tc.src, nil)
			if err != nil {
				t.Fatal(err)
			}
			s := &State{Phase: OnHTTPRequest, X: x, Conn: x.Conn}
			defer s.release()
			got, err := tp.Eval(s)
			if err != nil || got != tc.str {
				t.Errorf("Eval = %q, %v; want %q", got, err, tc.str)
			}
			val, err := tp.EvalValue(s)
			if err != nil || !reflect.DeepEqual(val, tc.val) {
				t.Errorf("EvalValue = %#v, %v; want %#v", val, err, tc.val)
			}
			if _, static := tp.Static(); static != tc.isStatic {
				t.Errorf("Static = %v", static)
			}
			if tp.Raw() != tc.src {
				t.Errorf("Raw = %q", tp.Raw())
			}
		})
	}
}

func TestTemplateErrors(t *testing.T) {
	cases := map[string]string{
		"${":            "unterminated",
		"a ${b":         "unterminated",
		"${}":           "empty ${}",
		"${ }":          "empty ${}",
		"${1 +}":        "Syntax error",
		"${nosuch}":     "undeclared reference",
		"${'unclosed}":  "unterminated",
		"ok ${1} ${2 +": "unterminated",
	}
	comp := newCompiler("t.yaml", nil)
	for src, want := range cases {
		if _, err := comp.template(src, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", src, err, want)
		}
	}
}

func TestTemplateRuntimeError(t *testing.T) {
	comp := newCompiler("t.yaml", nil)
	tp, err := comp.template("x ${req.headers['x-missing'][0]}", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, x := fixture()
	s := &State{Phase: OnHTTPRequest, X: x}
	if _, err := tp.Eval(s); err == nil || !strings.Contains(err.Error(), "no such key") {
		t.Fatalf("got %v", err)
	}
}

func TestNilTemplate(t *testing.T) {
	var tp *Template
	if s, err := tp.Eval(nil); s != "" || err != nil {
		t.Fatal(s, err)
	}
	if s, ok := tp.Static(); s != "" || !ok {
		t.Fatal(s, ok)
	}
}
