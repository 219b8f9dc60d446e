package policy

// Load-time side of the action contract: strict decoding of an action's
// `config:` mapping into its struct, with file:line:col errors, and
// compilation of the CEL and ${} templates it contains.

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Decode strictly decodes c.Node into v, a pointer to a struct whose fields
// carry `yaml:"name"` tags. Unknown keys and wrong types are errors with the
// position of the offending node. A nil Node leaves v untouched.
//
// Supported field types: string, bool, int*, uint*, float*, time.Duration
// (Go syntax "10s", or a number of seconds), []T, map[string]T, *T, nested
// structs, any, yaml.Node (raw), Template, *Template and *Expr.
func (c *Config) Decode(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("policy: Decode needs a non-nil pointer, got %T", v)
	}
	if c.Node == nil {
		return nil
	}
	d := decoder{c: c}
	d.value(c.Node, rv.Elem(), "config")
	return errors.Join(d.errs...)
}

// Errorf returns an error located at n (or at the action when n is nil):
// "file:line:col: type: message".
func (c *Config) Errorf(n *yaml.Node, format string, args ...any) error {
	if n == nil {
		n = c.at
	}
	msg := fmt.Sprintf(format, args...)
	if c.Type != "" {
		msg = c.Type + ": " + msg
	}
	return c.comp().errAt(n, -1, msg)
}

// CompileTemplate compiles a string with ${expr} parts. n locates the string
// in the file for error messages (nil: the action).
func (c *Config) CompileTemplate(s string, n *yaml.Node) (*Template, error) {
	if n == nil {
		n = c.at
	}
	return c.comp().template(s, n)
}

// CompileExpr compiles and type-checks a CEL expression in the policy's
// environment. n locates it in the file (nil: the action).
func (c *Config) CompileExpr(src string, n *yaml.Node) (*Expr, error) {
	if n == nil {
		n = c.at
	}
	return c.comp().expr(src, n, false)
}

// comp returns the engine's compiler, or a bare one for Configs built
// outside the engine (tests of actions).
func (c *Config) comp() *compiler {
	if c.c == nil {
		c.c = defaultCompiler()
	}
	return c.c
}

var (
	typTemplate = reflect.TypeFor[Template]()
	typExpr     = reflect.TypeFor[Expr]()
	typNode     = reflect.TypeFor[yaml.Node]()
	typDuration = reflect.TypeFor[time.Duration]()
)

type decoder struct {
	c    *Config
	errs []error
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, d.c.Errorf(n, "%s: %s", path, fmt.Sprintf(format, args...)))
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// value decodes n into v; path names the field for messages.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	n = deref(n)
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	switch v.Type() {
	case typNode:
		v.Set(reflect.ValueOf(*n))
		return
	case typTemplate:
		if s, ok := d.scalar(n, path, "a string"); ok {
			t, err := d.c.comp().template(s, n)
			if err != nil {
				d.errs = append(d.errs, err)
				return
			}
			v.Set(reflect.ValueOf(*t))
		}
		return
	case typDuration:
		s, ok := d.scalar(n, path, "a duration such as \"10s\"")
		if !ok {
			return
		}
		if n.Tag == "!!int" || n.Tag == "!!float" {
			f, err := strconv.ParseFloat(s, 64)
			if err == nil && f >= 0 {
				v.SetInt(int64(f * float64(time.Second)))
				return
			}
		}
		dur, err := time.ParseDuration(s)
		if err != nil || dur < 0 {
			d.fail(n, path, "expected a duration such as \"10s\" or \"1m30s\", got %q", s)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			v.SetZero()
			return
		}
		if v.Type().Elem() == typExpr {
			s, ok := d.scalar(n, path, "a CEL expression")
			if !ok {
				return
			}
			e, err := d.c.comp().expr(s, n, false)
			if err != nil {
				d.errs = append(d.errs, err)
				return
			}
			v.Set(reflect.ValueOf(e))
			return
		}
		p := reflect.New(v.Type().Elem())
		d.value(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.String:
		if s, ok := d.scalar(n, path, "a string"); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		s, ok := d.scalar(n, path, "true or false")
		if !ok {
			return
		}
		b, err := strconv.ParseBool(s)
		if err != nil {
			d.fail(n, path, "expected true or false, got %q", s)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		s, ok := d.scalar(n, path, "an integer")
		if !ok {
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, v.Type().Bits())
		if err != nil {
			d.fail(n, path, "expected an integer, got %q", s)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		s, ok := d.scalar(n, path, "a non-negative integer")
		if !ok {
			return
		}
		i, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 0, v.Type().Bits())
		if err != nil {
			d.fail(n, path, "expected a non-negative integer, got %q", s)
			return
		}
		v.SetUint(i)
	case reflect.Float32, reflect.Float64:
		s, ok := d.scalar(n, path, "a number")
		if !ok {
			return
		}
		f, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			d.fail(n, path, "expected a number, got %q", s)
			return
		}
		v.SetFloat(f)
	case reflect.Slice:
		if isNull(n) {
			v.SetZero()
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "expected a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.value(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if isNull(n) {
			v.SetZero()
			return
		}
		if n.Kind != yaml.MappingNode || v.Type().Key().Kind() != reflect.String {
			d.fail(n, path, "expected a mapping, got %s", kindName(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			ev := reflect.New(v.Type().Elem()).Elem()
			d.value(val, ev, path+"."+k.Value)
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), ev)
		}
		v.Set(m)
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			d.fail(n, path, "%v", err)
			return
		}
		if x == nil {
			return
		}
		if xv := reflect.ValueOf(x); xv.Type().AssignableTo(v.Type()) {
			v.Set(xv)
		} else {
			d.fail(n, path, "unsupported field type %s (engine bug)", v.Type())
		}
	default:
		d.fail(n, path, "unsupported field type %s (engine bug)", v.Type())
	}
}

// scalar returns n's text when it is a scalar. Numbers and booleans are
// accepted where strings are expected, as ngrok does (a header value `1`).
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.fail(n, path, "expected %s, got %s", want, kindName(n))
		return "", false
	}
	return n.Value, true
}

// structure decodes a mapping into a struct, rejecting unknown keys.
func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "expected a mapping, got %s", kindName(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		idx, ok := fields[k.Value]
		if !ok {
			known := make([]string, 0, len(fields))
			for name := range fields {
				known = append(known, name)
			}
			sort.Strings(known)
			where := path
			if where == "config" {
				where = d.c.Type + " config"
			}
			d.errs = append(d.errs, d.c.comp().errAt(k, -1, fmt.Sprintf("%sunknown field %q in %s (known: %s)",
				typePrefix(d.c.Type), k.Value, where, strings.Join(known, ", "))))
			continue
		}
		if seen[k.Value] {
			d.fail(k, path, "field %q given twice", k.Value)
			continue
		}
		seen[k.Value] = true
		d.value(val, v.FieldByIndex(idx), path+"."+k.Value)
	}
}

func typePrefix(t string) string {
	if t == "" {
		return ""
	}
	return t + ": "
}

// fieldsOf maps yaml names to field indexes. Fields without a yaml tag use
// their lowercased name; `yaml:"-"` and unexported fields are skipped;
// `,inline` structs contribute their own fields.
func fieldsOf(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct {
			for k, idx := range fieldsOf(f.Type) {
				out[k] = append([]int{i}, idx...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = []int{i}
	}
	return out
}
