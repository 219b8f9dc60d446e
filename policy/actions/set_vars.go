package actions

import (
	"github.com/sluicehq/sluice/policy"
	"go.yaml.in/yaml/v3"
)

// SetVars is the `set-vars` action: it sets variables that later rules and
// actions read as vars.<name>, in expressions and ${} interpolation.
//
//	actions:
//	  - type: set-vars
//	    config:
//	      vars:
//	        - tier: free
//	        - limit: ${req.url.path.startsWith('/api') ? 100 : 10}
//	        - greeting: Your IP is ${conn.client_ip}!
//
// vars (list of one-entry maps, required): name → value, set in list order,
// so a later entry can read an earlier one. Values may be any YAML: strings,
// numbers, booleans, null, lists and maps. Strings support ${}
// interpolation; a string that is exactly one ${expr} keeps the
// expression's CEL type (a number, list or map), otherwise the parts are
// joined as text. As a convenience a plain map (vars: {a: 1, b: 2}) is also
// accepted and set in file order.
//
// Variables are scoped to the phase they are set in: on_tcp_connect values
// are the connection's, on_http_request / on_http_response ones the
// request's.
type SetVars struct {
	Vars yaml.Node `yaml:"vars"`

	names []string
	vals  []*value
}

func newSetVars(c *policy.Config) (policy.Action, error) {
	a := &SetVars{}
	if err := c.Decode(a); err != nil {
		return nil, err
	}
	if !hasField(c.Node, "vars") {
		return nil, c.Errorf(nil, "missing required field \"vars\"")
	}
	n := fieldNode(c.Node, "vars") // the file's node: keeps positions
	add := func(k, v *yaml.Node) error {
		if k.Value == "" {
			return c.Errorf(k, "vars: a variable needs a name")
		}
		val, err := compileValue(c, v)
		if err != nil {
			return err
		}
		a.names = append(a.names, k.Value)
		a.vals = append(a.vals, val)
		return nil
	}
	switch n.Kind {
	case yaml.SequenceNode:
		for i, item := range n.Content {
			if item.Kind != yaml.MappingNode || len(item.Content) != 2 {
				return nil, c.Errorf(item, "vars[%d]: each entry must be a map with exactly one name: value", i)
			}
			if err := add(item.Content[0], item.Content[1]); err != nil {
				return nil, err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := add(n.Content[i], n.Content[i+1]); err != nil {
				return nil, err
			}
		}
	default:
		return nil, c.Errorf(n, "vars: expected a list of name: value maps")
	}
	if len(a.names) == 0 {
		return nil, c.Errorf(n, "vars: at least one variable is required")
	}
	return a, nil
}

// Run sets the variables in order.
func (a *SetVars) Run(s *policy.State) error {
	for i, name := range a.names {
		v, err := a.vals[i].eval(s)
		if err != nil {
			return err
		}
		s.SetVar(name, v)
	}
	return nil
}

func init() {
	policy.Register(policy.Spec{Type: "set-vars", New: newSetVars})
}

var _ policy.Action = (*SetVars)(nil)
