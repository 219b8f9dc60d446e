package policy

// ${expr} interpolation in config strings, compiled at load.

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// Template is a config string with ${expr} parts (CEL). "$${" writes a
// literal "${".
type Template struct {
	raw    string
	parts  []tpart
	single bool // exactly one ${expr} and nothing else: keeps its CEL type
}

type tpart struct {
	lit string
	x   *Expr
}

// template compiles s; n locates it (s is usually n.Value).
func (c *compiler) template(s string, n *yaml.Node) (*Template, error) {
	base := -1
	if n != nil && n.Kind == yaml.ScalarNode {
		base = strings.Index(n.Value, s)
	}
	at := func(off int) int {
		if base < 0 {
			return -1
		}
		return base + off
	}
	t := &Template{raw: s}
	var lit strings.Builder
	var errs []error
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			lit.WriteString("${")
			i += 3
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			lit.WriteByte(s[i])
			i++
			continue
		}
		end := InterpolationEnd(s, i+2)
		if end < 0 {
			errs = append(errs, c.errAt(n, at(i), "unterminated ${ in interpolation (missing })"))
			break
		}
		src := s[i+2 : end]
		var x *Expr
		var err error
		if strings.TrimSpace(src) == "" {
			err = c.errAt(n, at(i), "empty ${} in interpolation")
		} else {
			x, err = c.exprAt(src, n, at(i+2), false)
		}
		if err != nil {
			errs = append(errs, err)
		} else {
			if lit.Len() > 0 {
				t.parts = append(t.parts, tpart{lit: lit.String()})
				lit.Reset()
			}
			t.parts = append(t.parts, tpart{x: x})
		}
		i = end + 1
	}
	if len(errs) > 0 {
		return nil, joinErrs(errs)
	}
	if lit.Len() > 0 {
		t.parts = append(t.parts, tpart{lit: lit.String()})
	}
	t.single = len(t.parts) == 1 && t.parts[0].x != nil
	return t, nil
}

// InterpolationEnd finds the '}' closing an interpolation whose expression
// starts at i, skipping CEL string literals and nested braces (map
// literals); -1 if none. Actions that split a config string around its
// ${} parts use it to agree with the engine.
func InterpolationEnd(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch ch := s[i]; ch {
		case '\'', '"':
			// skip a string literal, with backslash escapes
			q := ch
			i++
			for i < len(s) && s[i] != q {
				if s[i] == '\\' {
					i++
				}
				i++
			}
		case '{':
			depth++
		case '}':
			if depth == 0 {
				return i
			}
			depth--
		}
		i++
	}
	return -1
}

// Eval returns the interpolated string. Values are formatted as ngrok does:
// strings as they are, numbers plainly, lists and maps as JSON.
func (t *Template) Eval(s *State) (string, error) {
	if t == nil {
		return "", nil
	}
	if len(t.parts) == 1 {
		p := t.parts[0]
		if p.x == nil {
			return p.lit, nil
		}
		return p.x.EvalString(s)
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.x == nil {
			b.WriteString(p.lit)
			continue
		}
		v, err := p.x.EvalString(s)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

// EvalValue returns the value: for a template that is exactly one ${expr},
// the expression's value with its type (string, int64, float64, bool,
// []any, map[string]any, ...); otherwise the interpolated string.
func (t *Template) EvalValue(s *State) (any, error) {
	if t != nil && t.single {
		return t.parts[0].x.Eval(s)
	}
	return t.Eval(s)
}

// Static returns the literal value when the template has no ${}.
func (t *Template) Static() (string, bool) {
	if t == nil {
		return "", true
	}
	for _, p := range t.parts {
		if p.x != nil {
			return "", false
		}
	}
	if len(t.parts) == 0 {
		return "", true
	}
	return t.parts[0].lit, true
}

// Raw returns the template as written.
func (t *Template) Raw() string {
	if t == nil {
		return ""
	}
	return t.raw
}
