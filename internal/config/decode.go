package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// PosError is one problem in a config file, at a position users can jump to.
type PosError struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *PosError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// nodeDecoder is implemented by config types whose YAML shape is not a plain
// struct (a duration string, "one value or a list", ...). They decode from
// the node themselves so that their errors keep the node's position.
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, path string)
}

// decoder fills config structs from a yaml.Node tree strictly: unknown keys,
// duplicate keys and wrong types are errors with file:line:col. yaml.v3's
// own KnownFields mode reports only a line and a Go type name, which is not
// what a user of the config file should have to read.
type decoder struct {
	file    string
	env     func(string) (string, bool)
	errs    []error
	dropped int                   // errors beyond maxErrors
	nodes   map[string]*yaml.Node // path -> value node, for later validation
}

// maxErrors bounds the report: a file that is wrong everywhere (or an
// alias repeated thousands of times) needs its first problems fixed, not
// a flood.
const maxErrors = 50

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	line, col := 0, 0
	if n != nil {
		line, col = n.Line, n.Column
	}
	if len(d.errs) >= maxErrors {
		d.dropped++
		return
	}
	d.errs = append(d.errs, &PosError{File: d.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) err() error {
	if d.dropped > 0 {
		return errors.Join(append(d.errs, fmt.Errorf("%s: and %d more errors", d.file, d.dropped))...)
	}
	return errors.Join(d.errs...)
}

var (
	nodePtrType     = reflect.TypeFor[*yaml.Node]()
	nodeDecoderType = reflect.TypeFor[nodeDecoder]()
)

// decode fills v (addressable) from n. path names the value for messages,
// e.g. "endpoints[1].upstream".
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	d.nodes[path] = n
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if v.Type() == nodePtrType {
		// Kept raw (inline traffic policy, tunnel_server): no env expansion,
		// because ngrok's ${expr} interpolation uses the same syntax.
		v.Set(reflect.ValueOf(n))
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(nodeDecoderType) {
		v.Addr().Interface().(nodeDecoder).decodeNode(d, n, path)
		return
	}
	if isNull(n) {
		return // keep the zero value / default
	}
	switch v.Kind() {
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		d.decode(n, nv.Elem(), path)
		v.Set(nv)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, "%s: want a list, got %s", path, describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.String:
		if s, ok := d.scalar(n, path); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		b, err := parseBool(s)
		if err != nil {
			d.errorf(n, "%s: want true or false, got %q", path, s)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			d.errorf(n, "%s: want an integer, got %q", path, s)
			return
		}
		v.SetInt(i)
	default:
		panic("config: unsupported field type " + v.Type().String())
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s: want a mapping, got %s", orTop(path), describe(n))
		return
	}
	t := v.Type()
	fields := map[string]int{}
	var known []string
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = i
		known = append(known, tag)
	}
	sort.Strings(known)
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		idx, ok := fields[key]
		if !ok {
			where := ""
			if path != "" {
				where = " in " + path
			}
			d.errorf(k, "unknown key %q%s (known keys: %s)", key, where, strings.Join(known, ", "))
			continue
		}
		if seen[key] {
			d.errorf(k, "duplicate key %q", key)
			continue
		}
		seen[key] = true
		d.decode(val, v.Field(idx), join(path, key))
	}
}

// scalar returns the node's value after ${ENV} expansion.
func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, "%s: want a single value, got %s", path, describe(n))
		return "", false
	}
	s, err := expand(n.Value, d.env)
	if err != nil {
		d.errorf(n, "%s: %v", path, err)
		return "", false
	}
	return s, true
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "yes", "on":
		return true, nil
	case "false", "no", "off", "":
		return false, nil
	}
	return false, errors.New("not a bool")
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orTop(path string) string {
	if path == "" {
		return "config"
	}
	return path
}

// expand replaces ${NAME} and ${NAME:-default} with environment values.
// "$${" stays a literal "${". Only names made of letters, digits and '_'
// are expanded, so other "${...}" text passes through untouched.
func expand(s string, env func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' { // "$${" escape
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		inner := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(inner, ":-")
		if !validEnvName(name) {
			b.WriteString(s[:i+end+1])
			s = s[i+end+1:]
			continue
		}
		val, ok := env(name)
		if !ok || (hasDef && val == "") {
			if !hasDef {
				return "", fmt.Errorf("environment variable %s is not set (write ${%s:-default} to give a default)", name, name)
			}
			val = def
		}
		b.WriteString(s[:i])
		b.WriteString(val)
		s = s[i+end+1:]
	}
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
