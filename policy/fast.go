package policy

// A native evaluator for the expression shapes most policies are made of:
// a variable compared with a constant; string prefix/suffix/substring and
// regexp tests; header presence and lookups (hasReqHeader, getReqHeader,
// req.headers['x'][0]); membership in a constant list; size(); CIDR tests
// against constant ranges; all joined by !, && and ||. CEL's interpreter
// costs a few hundred nanoseconds per expression in frames, attribute
// resolution, overload dispatch and boxing every string into a ref.Val;
// these shapes need none of that and allocate nothing. Anything outside
// the subset, and any value of an unexpected type or any error at run
// time, goes to the CEL program, so results are CEL's by construction
// (fast_test.go checks both agree).

import (
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// noFast turns the native evaluator off (tests compare it with CEL).
var noFast bool

type fkind uint8

const (
	fStr fkind = iota + 1
	fInt
	fBool
	fList // a list of strings
)

// fv is a value of the native evaluator: unboxed, so producing one does
// not allocate.
type fv struct {
	k fkind
	b bool
	n int64
	s string
	l []string
}

func fromRef(v ref.Val) (fv, bool) {
	switch t := v.(type) {
	case types.String:
		return fv{k: fStr, s: string(t)}, true
	case types.Int:
		return fv{k: fInt, n: int64(t)}, true
	case types.Bool:
		return fv{k: fBool, b: bool(t)}, true
	}
	return fv{}, false
}

// ref boxes v as CEL would have produced it.
func (v fv) ref() ref.Val {
	switch v.k {
	case fStr:
		return types.String(v.s)
	case fInt:
		return types.Int(v.n)
	case fBool:
		return types.Bool(v.b)
	}
	return types.NewStringList(adapter, v.l)
}

// fastFn evaluates an expression natively; ok=false asks for CEL instead.
type fastFn func(e *evaluation) (v fv, ok bool)

// nativeStr are the string variables the native evaluator reads without
// a ref.Val; the variables table uses the same functions.
var nativeStr = map[string]func(e *evaluation) string{
	"conn.client_ip":    varClientIP,
	"conn.server_ip":    func(e *evaluation) string { return addrString(e.conn().ServerAddr.Addr()) },
	"req.method":        func(e *evaluation) string { return e.req().Method },
	"req.version":       func(e *evaluation) string { return e.req().Proto },
	"req.host":          func(e *evaluation) string { return e.req().Host },
	"req.url.authority": func(e *evaluation) string { return e.req().Host },
	"req.url.scheme":    func(e *evaluation) string { return e.req().Scheme },
	"req.url.path":      varReqPath,
	"req.url.raw_path":  func(e *evaluation) string { return e.req().Path },
	"req.url.query":     func(e *evaluation) string { return e.req().RawQuery },
	"endpoint.id":       func(e *evaluation) string { return e.endpoint().ID },
	"endpoint.url":      func(e *evaluation) string { return e.endpoint().URL },
	"endpoint.host":     func(e *evaluation) string { return e.endpoint().Host },
	"conn.tls.sni":      varSNI,
	"req.content_type":  func(e *evaluation) string { mt, _ := mediaType(e.req().Header); return mt },
	"res.content_type":  func(e *evaluation) string { mt, _ := mediaType(e.res().Header); return mt },
	"req.user_agent":    func(e *evaluation) string { return e.req().Header.Get("User-Agent") },
}

// nativeStrIdx is nativeStr by variable index.
var nativeStrIdx = func() []func(e *evaluation) string {
	out := make([]func(e *evaluation) string, len(variables))
	for name, f := range nativeStr {
		if i, ok := varIndex[name]; ok {
			out[i] = f
		}
	}
	return out
}()

// headerVars are the header maps the native evaluator looks into directly.
var headerVars = map[string]func(e *evaluation) headerView{
	"req.headers": reqHeaders,
	"res.headers": func(e *evaluation) headerView { return headerView{h: e.res().Header} },
}

// reqHeaders is req.headers: the request's header map and its Host.
func reqHeaders(e *evaluation) headerView {
	r := e.req()
	return headerView{h: r.Header, host: r.Host}
}

// str returns native string variable i, computed once per generation like
// resolve does.
func (e *evaluation) str(i int) string {
	want := e.genFor(i)
	if e.strGens[i] == want {
		return e.strs[i]
	}
	if computeHook != nil {
		computeHook(variables[i].name)
	}
	v := nativeStrIdx[i](e)
	if e.strs[i] == "" {
		e.used = append(e.used, i)
	}
	e.strs[i], e.strGens[i] = v, want
	return v
}

// compileFast returns the native form of the checked expression, or nil.
func compileFast(a *celast.AST) fastFn {
	return fastNode(a, a.Expr(), 0)
}

// varRef returns the variable an expression node refers to, or "".
func varRef(a *celast.AST, x celast.Expr) string {
	if r := a.ReferenceMap()[x.ID()]; r != nil && r.Name != "" && r.Value == nil {
		return r.Name
	}
	return ""
}

func fastNode(a *celast.AST, x celast.Expr, depth int) fastFn {
	if depth > 16 {
		return nil
	}
	if name := varRef(a, x); name != "" {
		i, ok := varIndex[name]
		if !ok {
			return nil
		}
		if nativeStrIdx[i] != nil {
			return func(e *evaluation) (fv, bool) { return fv{k: fStr, s: e.str(i)}, true }
		}
		return func(e *evaluation) (fv, bool) { return fromRef(e.resolve(i)) }
	}
	switch x.Kind() {
	case celast.LiteralKind:
		v, ok := fromRef(x.AsLiteral())
		if !ok {
			return nil
		}
		return func(*evaluation) (fv, bool) { return v, true }
	case celast.ListKind:
		l, ok := constStrings(x)
		if !ok {
			return nil
		}
		v := fv{k: fList, l: l}
		return func(*evaluation) (fv, bool) { return v, true }
	case celast.CallKind:
		return fastCall(a, x, depth)
	}
	return nil
}

// constStrings returns the elements of a list literal of string literals.
func constStrings(x celast.Expr) ([]string, bool) {
	if x.Kind() != celast.ListKind {
		return nil, false
	}
	l := x.AsList()
	if len(l.OptionalIndices()) > 0 {
		return nil, false
	}
	out := make([]string, 0, l.Size())
	for _, el := range l.Elements() {
		s, ok := constString(el)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

func constString(x celast.Expr) (string, bool) {
	if x.Kind() != celast.LiteralKind {
		return "", false
	}
	s, ok := x.AsLiteral().(types.String)
	return string(s), ok
}

// headerArg returns the header map getter when x is req.headers or
// res.headers.
func headerArg(a *celast.AST, x celast.Expr) func(e *evaluation) headerView {
	return headerVars[varRef(a, x)]
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
	sub := func(i int) fastFn { return fastNode(a, args[i], depth+1) }
	switch fn := c.FunctionName(); fn {
	case operators.LogicalNot:
		if len(args) != 1 {
			return nil
		}
		return unaryOn(sub(0), fBool, func(v fv) (fv, bool) { return fv{k: fBool, b: !v.b}, true })
	case operators.LogicalAnd, operators.LogicalOr:
		if len(args) != 2 {
			return nil
		}
		l, r := sub(0), sub(1)
		if l == nil || r == nil {
			return nil
		}
		and := fn == operators.LogicalAnd
		return func(e *evaluation) (fv, bool) {
			v, ok := l(e)
			if !ok || v.k != fBool {
				return fv{}, false
			}
			if v.b != and { // false && _, true || _
				return v, true
			}
			v, ok = r(e)
			if !ok || v.k != fBool {
				return fv{}, false
			}
			return v, true
		}
	case operators.Equals, operators.NotEquals, operators.Less, operators.LessEquals,
		operators.Greater, operators.GreaterEquals:
		if len(args) != 2 {
			return nil
		}
		l, r := sub(0), sub(1)
		if l == nil || r == nil {
			return nil
		}
		test := comparison(fn)
		return func(e *evaluation) (fv, bool) {
			lv, ok1 := l(e)
			rv, ok2 := r(e)
			if !ok1 || !ok2 || lv.k != rv.k {
				return fv{}, false
			}
			var cmp int
			switch lv.k {
			case fStr:
				cmp = strings.Compare(lv.s, rv.s)
			case fInt:
				cmp = compareInts(lv.n, rv.n)
			case fBool:
				if fn != operators.Equals && fn != operators.NotEquals {
					return fv{}, false
				}
				if lv.b != rv.b {
					cmp = 1
				}
			default:
				return fv{}, false
			}
			return fv{k: fBool, b: test(cmp)}, true
		}
	case operators.In:
		if len(args) != 2 {
			return nil
		}
		if h := headerArg(a, args[1]); h != nil { // hasReqHeader('k'), 'k' in req.headers
			key, ok := constString(args[0])
			if !ok {
				return nil
			}
			return func(e *evaluation) (fv, bool) {
				_, found := h(e).values(key)
				return fv{k: fBool, b: found}, true
			}
		}
		set, ok := constStrings(args[1])
		if !ok {
			return nil
		}
		return unaryOn(sub(0), fStr, func(v fv) (fv, bool) {
			return fv{k: fBool, b: slices.Contains(set, v.s)}, true
		})
	case "_sluice_get": // getReqHeader('k'), getResHeader('k')
		h := headerArg(a, args[0])
		key, ok := constString(args[1])
		if h == nil || !ok {
			return nil
		}
		return func(e *evaluation) (fv, bool) {
			vals, _ := h(e).values(key)
			return fv{k: fList, l: vals}, true
		}
	case operators.Index:
		if len(args) != 2 {
			return nil
		}
		if h := headerArg(a, args[0]); h != nil { // req.headers['k']
			key, ok := constString(args[1])
			if !ok {
				return nil
			}
			return func(e *evaluation) (fv, bool) {
				vals, found := h(e).values(key)
				return fv{k: fList, l: vals}, found // missing: CEL's error
			}
		}
		if args[1].Kind() != celast.LiteralKind {
			return nil
		}
		idx, ok := args[1].AsLiteral().(types.Int)
		if !ok {
			return nil
		}
		return unaryOn(sub(0), fList, func(v fv) (fv, bool) {
			if idx < 0 || int64(idx) >= int64(len(v.l)) {
				return fv{}, false // out of range: CEL's error
			}
			return fv{k: fStr, s: v.l[idx]}, true
		})
	case overloads.Size:
		var target celast.Expr
		switch {
		case c.IsMemberFunction() && len(args) == 0:
			target = c.Target()
		case !c.IsMemberFunction() && len(args) == 1:
			target = args[0]
		default:
			return nil
		}
		f := fastNode(a, target, depth+1)
		if f == nil {
			return nil
		}
		return func(e *evaluation) (fv, bool) {
			v, ok := f(e)
			switch {
			case !ok:
				return fv{}, false
			case v.k == fStr:
				return fv{k: fInt, n: int64(utf8.RuneCountInString(v.s))}, true
			case v.k == fList:
				return fv{k: fInt, n: int64(len(v.l))}, true
			}
			return fv{}, false
		}
	case "inCidrRange", "inCidrRanges":
		if c.IsMemberFunction() || len(args) != 2 {
			return nil
		}
		var ranges []string
		if fn == "inCidrRange" {
			s, ok := constString(args[1])
			if !ok || !hasOverload(a, x, "inCidrRange_string_string") {
				return nil
			}
			ranges = []string{s}
		} else {
			l, ok := constStrings(args[1])
			if !ok || !hasOverload(a, x, "inCidrRanges_string_list") {
				return nil
			}
			ranges = l
		}
		var prefixes []netip.Prefix
		for _, r := range ranges {
			if p := parseCIDR(r); p.IsValid() {
				prefixes = append(prefixes, p)
			}
		}
		contains := func(a netip.Addr) bool {
			a = a.Unmap()
			for _, p := range prefixes {
				if p.Contains(a) {
					return true
				}
			}
			return false
		}
		if varRef(a, args[0]) == "conn.client_ip" { // no text round trip
			return func(e *evaluation) (fv, bool) {
				return fv{k: fBool, b: contains(e.conn().ClientAddr.Addr())}, true
			}
		}
		return unaryOn(sub(0), fStr, func(v fv) (fv, bool) {
			addr, err := netip.ParseAddr(v.s)
			return fv{k: fBool, b: err == nil && contains(addr)}, true
		})
	case overloads.StartsWith, overloads.EndsWith, overloads.Contains, overloads.Matches:
		if !c.IsMemberFunction() || len(args) != 1 {
			return nil
		}
		arg, ok := constString(args[0])
		if !ok {
			return nil
		}
		var test func(string) bool
		switch fn {
		case overloads.StartsWith:
			if !hasOverload(a, x, overloads.StartsWithString) {
				return nil
			}
			test = func(s string) bool { return strings.HasPrefix(s, arg) }
		case overloads.EndsWith:
			if !hasOverload(a, x, overloads.EndsWithString) {
				return nil
			}
			test = func(s string) bool { return strings.HasSuffix(s, arg) }
		case overloads.Contains:
			if !hasOverload(a, x, overloads.ContainsString) {
				return nil
			}
			test = func(s string) bool { return strings.Contains(s, arg) }
		case overloads.Matches:
			if !hasOverload(a, x, overloads.MatchesString) {
				return nil
			}
			re, err := regexp.Compile(arg)
			if err != nil {
				return nil // CEL reports it
			}
			test = re.MatchString
		}
		return unaryOn(fastNode(a, c.Target(), depth+1), fStr, func(v fv) (fv, bool) {
			return fv{k: fBool, b: test(v.s)}, true
		})
	}
	return nil
}

// unaryOn applies op to what f yields when that is of kind k; any other
// value, and op's ok=false, go to CEL.
func unaryOn(f fastFn, k fkind, op func(fv) (fv, bool)) fastFn {
	if f == nil {
		return nil
	}
	return func(e *evaluation) (fv, bool) {
		v, ok := f(e)
		if !ok || v.k != k {
			return fv{}, false
		}
		return op(v)
	}
}

func compareInts(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// comparison maps a comparison operator to a test of a three-way result.
func comparison(op string) func(int) bool {
	switch op {
	case operators.Equals:
		return func(c int) bool { return c == 0 }
	case operators.NotEquals:
		return func(c int) bool { return c != 0 }
	case operators.Less:
		return func(c int) bool { return c < 0 }
	case operators.LessEquals:
		return func(c int) bool { return c <= 0 }
	case operators.Greater:
		return func(c int) bool { return c > 0 }
	}
	return func(c int) bool { return c >= 0 }
}
