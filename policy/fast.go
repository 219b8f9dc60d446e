package policy

// A native evaluator for the expression shapes most policies are made of
// (a variable compared with a constant, string prefix/suffix/substring and
// regexp tests, joined by !, && and ||). CEL's interpreter costs a few
// hundred nanoseconds per expression in frames, attribute resolution and
// overload dispatch; these shapes need none of that. Anything outside the
// subset, and any value of an unexpected type at run time, goes to the CEL
// program, so results are CEL's by construction (fast_test.go checks both
// agree).

import (
	"regexp"
	"strings"

	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// noFast turns the native evaluator off (tests compare it with CEL).
var noFast bool

// fastFn evaluates an expression natively; ok=false asks for CEL instead.
type fastFn func(e *evaluation) (v ref.Val, ok bool)

// compileFast returns the native form of the checked expression, or nil.
func compileFast(a *celast.AST) fastFn {
	return fastNode(a, a.Expr(), 0)
}

func fastNode(a *celast.AST, x celast.Expr, depth int) fastFn {
	if depth > 16 {
		return nil
	}
	if r := a.ReferenceMap()[x.ID()]; r != nil && r.Name != "" && r.Value == nil {
		i, ok := varIndex[r.Name]
		if !ok {
			return nil
		}
		return func(e *evaluation) (ref.Val, bool) { return e.resolve(i), true }
	}
	switch x.Kind() {
	case celast.LiteralKind:
		v := x.AsLiteral()
		switch v.(type) {
		case types.String, types.Int, types.Bool:
			return func(*evaluation) (ref.Val, bool) { return v, true }
		}
		return nil
	case celast.CallKind:
		return fastCall(a, x, depth)
	}
	return nil
}

func hasOverload(a *celast.AST, x celast.Expr, id string) bool {
	r := a.ReferenceMap()[x.ID()]
	if r == nil {
		return false
	}
	for _, o := range r.OverloadIDs {
		if o == id {
			return true
		}
	}
	return false
}

func fastCall(a *celast.AST, x celast.Expr, depth int) fastFn {
	c := x.AsCall()
	args := c.Args()
	switch c.FunctionName() {
	case operators.LogicalNot:
		if len(args) != 1 {
			return nil
		}
		f := fastNode(a, args[0], depth+1)
		if f == nil {
			return nil
		}
		return func(e *evaluation) (ref.Val, bool) {
			v, ok := f(e)
			b, isBool := v.(types.Bool)
			if !ok || !isBool {
				return nil, false
			}
			return !b, true
		}
	case operators.LogicalAnd, operators.LogicalOr:
		if len(args) != 2 {
			return nil
		}
		l, r := fastNode(a, args[0], depth+1), fastNode(a, args[1], depth+1)
		if l == nil || r == nil {
			return nil
		}
		and := c.FunctionName() == operators.LogicalAnd
		return func(e *evaluation) (ref.Val, bool) {
			v, ok := l(e)
			b, isBool := v.(types.Bool)
			if !ok || !isBool {
				return nil, false
			}
			if bool(b) != and { // false && _, true || _
				return b, true
			}
			v, ok = r(e)
			if _, isBool := v.(types.Bool); !ok || !isBool {
				return nil, false
			}
			return v, true
		}
	case operators.Equals, operators.NotEquals:
		if len(args) != 2 {
			return nil
		}
		l, r := fastNode(a, args[0], depth+1), fastNode(a, args[1], depth+1)
		if l == nil || r == nil {
			return nil
		}
		eq := c.FunctionName() == operators.Equals
		return func(e *evaluation) (ref.Val, bool) {
			lv, ok1 := l(e)
			rv, ok2 := r(e)
			if !ok1 || !ok2 {
				return nil, false
			}
			var same bool
			switch lt := lv.(type) {
			case types.String:
				rt, ok := rv.(types.String)
				if !ok {
					return nil, false
				}
				same = lt == rt
			case types.Int:
				rt, ok := rv.(types.Int)
				if !ok {
					return nil, false
				}
				same = lt == rt
			case types.Bool:
				rt, ok := rv.(types.Bool)
				if !ok {
					return nil, false
				}
				same = lt == rt
			default:
				return nil, false
			}
			return types.Bool(same == eq), true
		}
	case "inCidrRange":
		if c.IsMemberFunction() || len(args) != 2 || args[1].Kind() != celast.LiteralKind || !hasOverload(a, x, "inCidrRange_string_string") {
			return nil
		}
		cidr, ok := args[1].AsLiteral().(types.String)
		if !ok {
			return nil
		}
		ip := fastNode(a, args[0], depth+1)
		if ip == nil {
			return nil
		}
		return func(e *evaluation) (ref.Val, bool) {
			v, ok := ip(e)
			s, isStr := v.(types.String)
			if !ok || !isStr {
				return nil, false
			}
			return types.Bool(inCidr(string(s), string(cidr))), true
		}
	case overloads.StartsWith, overloads.EndsWith, overloads.Contains, overloads.Matches:
		if !c.IsMemberFunction() || len(args) != 1 || args[0].Kind() != celast.LiteralKind {
			return nil
		}
		arg, ok := args[0].AsLiteral().(types.String)
		if !ok {
			return nil
		}
		var test func(string) bool
		switch c.FunctionName() {
		case overloads.StartsWith:
			if !hasOverload(a, x, overloads.StartsWithString) {
				return nil
			}
			test = func(s string) bool { return strings.HasPrefix(s, string(arg)) }
		case overloads.EndsWith:
			if !hasOverload(a, x, overloads.EndsWithString) {
				return nil
			}
			test = func(s string) bool { return strings.HasSuffix(s, string(arg)) }
		case overloads.Contains:
			if !hasOverload(a, x, overloads.ContainsString) {
				return nil
			}
			test = func(s string) bool { return strings.Contains(s, string(arg)) }
		case overloads.Matches:
			if !hasOverload(a, x, overloads.MatchesString) {
				return nil
			}
			re, err := regexp.Compile(string(arg))
			if err != nil {
				return nil // CEL reports it
			}
			test = re.MatchString
		}
		t := fastNode(a, c.Target(), depth+1)
		if t == nil {
			return nil
		}
		return func(e *evaluation) (ref.Val, bool) {
			v, ok := t(e)
			s, isStr := v.(types.String)
			if !ok || !isStr {
				return nil, false
			}
			return types.Bool(test(string(s))), true
		}
	}
	return nil
}
