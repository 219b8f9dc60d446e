package policy

import (
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/exchange"
	"go.yaml.in/yaml/v3"
)

type compiler struct{ file string }

func defaultCompiler() *compiler { return &compiler{file: "policy"} }

func (c *compiler) errAt(n *yaml.Node, line, col int, msg string) error {
	if n == nil {
		return fmt.Errorf("%s: %s", c.file, msg)
	}
	return fmt.Errorf("%s:%d:%d: %s", c.file, n.Line, n.Column, msg)
}
func (c *compiler) template(s string, n *yaml.Node) (*Template, error) { return &Template{raw: s}, nil }
func (c *compiler) expr(s string, n *yaml.Node, b bool) (*Expr, error) {
	return nil, errors.New("not yet")
}

// Template is a config string with ${expr} parts, compiled at load.
type Template struct{ raw string }

func (t *Template) Eval(s *State) (string, error)   { return t.raw, nil }
func (t *Template) EvalValue(s *State) (any, error) { return t.raw, nil }
func (t *Template) Static() (string, bool)          { return t.raw, true }
func (t *Template) Raw() string                     { return t.raw }

// Expr is a compiled CEL expression.
type Expr struct{}

func (e *Expr) Eval(s *State) (any, error)          { return nil, nil }
func (e *Expr) EvalBool(s *State) (bool, error)     { return false, nil }
func (e *Expr) EvalString(s *State) (string, error) { return "", nil }

type evaluation struct{}

func (e *evaluation) reset() {}

type Handle struct{}

func (h *Handle) OnConnect(c *exchange.Conn) error      { return nil }
func (h *Handle) OnRequest(x *exchange.Exchange) error  { return nil }
func (h *Handle) OnResponse(x *exchange.Exchange) error { return nil }
func (h *Handle) Done(x *exchange.Exchange)             {}
