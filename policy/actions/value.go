package actions

import (
	"strconv"

	"github.com/sluicehq/sluice/policy"
	"go.yaml.in/yaml/v3"
)

// value is a YAML value whose strings may hold ${} interpolation, compiled
// once at load: set-vars and log accept any YAML (numbers, lists, maps) and
// interpolate the strings inside, however deep.
type value struct {
	static any              // when tmpl, list and keys are all nil
	tmpl   *policy.Template // a string with ${}
	list   []*value
	keys   []string // a mapping: keys[i] → list[i]
}

func compileValue(c *policy.Config, n *yaml.Node) (*value, error) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.SequenceNode:
		v := &value{list: make([]*value, 0, len(n.Content))}
		for _, item := range n.Content {
			iv, err := compileValue(c, item)
			if err != nil {
				return nil, err
			}
			v.list = append(v.list, iv)
		}
		return v, nil
	case yaml.MappingNode:
		v := &value{keys: []string{}, list: []*value{}}
		for i := 0; i+1 < len(n.Content); i += 2 {
			iv, err := compileValue(c, n.Content[i+1])
			if err != nil {
				return nil, err
			}
			v.keys = append(v.keys, n.Content[i].Value)
			v.list = append(v.list, iv)
		}
		return v, nil
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return &value{}, nil
		case "!!bool":
			b, err := strconv.ParseBool(n.Value)
			if err != nil {
				return nil, c.Errorf(n, "%q is not a boolean", n.Value)
			}
			return &value{static: b}, nil
		case "!!int":
			i, err := strconv.ParseInt(n.Value, 0, 64)
			if err != nil {
				return nil, c.Errorf(n, "%q is not a 64-bit integer", n.Value)
			}
			return &value{static: i}, nil
		case "!!float":
			f, err := strconv.ParseFloat(n.Value, 64)
			if err != nil {
				return nil, c.Errorf(n, "%q is not a number", n.Value)
			}
			return &value{static: f}, nil
		}
		t, err := c.CompileTemplate(n.Value, n)
		if err != nil {
			return nil, err
		}
		if s, ok := t.Static(); ok {
			return &value{static: s}, nil
		}
		return &value{tmpl: t}, nil
	}
	return nil, c.Errorf(n, "unsupported YAML value")
}

// eval builds the value for this request. Lists become []any and mappings
// map[string]any, which CEL sees as list(dyn) and map(string, dyn).
func (v *value) eval(s *policy.State) (any, error) {
	switch {
	case v.tmpl != nil:
		return v.tmpl.EvalValue(s)
	case v.keys != nil:
		m := make(map[string]any, len(v.keys))
		for i, k := range v.keys {
			x, err := v.list[i].eval(s)
			if err != nil {
				return nil, err
			}
			m[k] = x
		}
		return m, nil
	case v.list != nil:
		l := make([]any, len(v.list))
		for i, item := range v.list {
			x, err := item.eval(s)
			if err != nil {
				return nil, err
			}
			l[i] = x
		}
		return l, nil
	}
	return v.static, nil
}
