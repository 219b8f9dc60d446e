package policy

// Run-time side of CEL: a lazy activation that computes a variable the
// first time an expression reads it and caches it until the request or
// response changes (State.Invalidate).

import (
	"fmt"
	"strconv"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
)

// evaluation is the interpreter.Activation of one State.
type evaluation struct {
	s    *State
	vals []ref.Val
	gens []uint32 // vals[i] is valid when gens[i] == gen
	gen  uint32
	used []int // indexes of vals and strs written since the last clear, to clear cheaply

	// The native evaluator's string variables (fast.go), kept the same way.
	strs    []string
	strGens []uint32

	// Connection and endpoint variables cannot change during a phase, so
	// Invalidate keeps them: they are valid while sgens[i] == sgen.
	sgen   uint32
	geoOK  bool
	geoVal GeoInfo
	uaGen  uint32
	uaVal  userAgent
}

// computeHook, when set (tests), is told of every variable computation.
var computeHook func(name string)

var evalPool = sync.Pool{New: func() any {
	n := len(variables)
	return &evaluation{vals: make([]ref.Val, n), gens: make([]uint32, n), strs: make([]string, n), strGens: make([]uint32, n), gen: 1, sgen: 1}
}}

func (s *State) activation() *evaluation {
	if s.ev == nil {
		e := evalPool.Get().(*evaluation)
		e.s = s
		s.ev = e
	}
	return s.ev
}

// release returns the State's evaluation to the pool.
func (s *State) release() {
	if e := s.ev; e != nil {
		s.ev = nil
		e.reset()
		e.sgen = e.gen // a new State: connection variables are stale too
		e.geoOK = false
		// Drop references to request data, touching only used slots.
		for _, i := range e.used {
			e.vals[i], e.strs[i] = nil, ""
		}
		e.used = e.used[:0]
		e.s = nil
		evalPool.Put(e)
	}
}

func (e *evaluation) reset() {
	e.gen++
	if e.gen == 0 { // wrapped: zero means "never computed"
		clear(e.gens)
		clear(e.strGens)
		e.gen = 1
	}
}

// ResolveName implements interpreter.Activation.
func (e *evaluation) ResolveName(name string) (any, bool) {
	i, ok := varIndex[name]
	if !ok {
		return nil, false
	}
	return e.resolve(i), true
}

// genFor is the generation under which variable i's cached value is valid:
// the connection's for connection and endpoint variables, else the phase's.
func (e *evaluation) genFor(i int) uint32 {
	if stableVar[i] {
		return e.sgen
	}
	return e.gen
}

// resolve returns variable i, computing it on first use.
func (e *evaluation) resolve(i int) ref.Val {
	want := e.genFor(i)
	if e.gens[i] == want {
		return e.vals[i]
	}
	if computeHook != nil {
		computeHook(variables[i].name)
	}
	v := variables[i].get(e)
	if e.vals[i] == nil {
		e.used = append(e.used, i)
	}
	e.vals[i], e.gens[i] = v, want
	return v
}

// Parent implements interpreter.Activation.
func (e *evaluation) Parent() interpreter.Activation { return nil }

func (e *evaluation) geo() *GeoInfo {
	if !e.geoOK {
		e.geoVal = lookupGeo(e.conn().ClientAddr.Addr())
		e.geoOK = true
	}
	return &e.geoVal
}

func (e *evaluation) ua() *userAgent {
	if e.uaGen != e.gen {
		e.uaVal = parseUserAgent(e.req().Header.Get("User-Agent"))
		e.uaGen = e.gen
	}
	return &e.uaVal
}

func (e *evaluation) userVars() ref.Val {
	vars := e.s.vars()
	m := make(map[string]any, len(vars))
	for k, v := range vars {
		if k != resultsKey {
			m[k] = v
		}
	}
	return adapter.NativeToValue(m)
}

func (e *evaluation) results() ref.Val {
	r, _ := e.s.vars()[resultsKey].(map[string]any)
	if r == nil {
		r = map[string]any{}
	}
	return adapter.NativeToValue(r)
}

// Expr is a CEL expression compiled and type-checked at load.
type Expr struct {
	src   string
	where string // "file:line:col" of the expression, for run-time errors
	prg   cel.Program
	typ   *cel.Type
	fast  fastFn // nil: CEL only (see fast.go)
}

// Source returns the expression text.
func (x *Expr) Source() string { return x.src }

func (x *Expr) eval(s *State) (v ref.Val, err error) {
	if f, ok := x.evalFast(s); ok {
		return f.ref(), nil
	}
	return x.evalCEL(s)
}

// evalFast runs the native form; ok=false when there is none or it defers
// to CEL.
func (x *Expr) evalFast(s *State) (v fv, ok bool) {
	if x.fast == nil || noFast {
		return fv{}, false
	}
	defer func() {
		if r := recover(); r != nil {
			v, ok = fv{}, false // CEL gives the error
		}
	}()
	return x.fast(s.activation())
}

func (x *Expr) evalCEL(s *State) (v ref.Val, err error) {
	// A panic inside cel-go or a function must fail this evaluation only.
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("%s: evaluation panicked: %v", x.where, r)
		}
	}()
	v, _, err = x.prg.Eval(s.activation())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", x.where, err)
	}
	if e, ok := v.(*types.Err); ok {
		return nil, fmt.Errorf("%s: %w", x.where, e)
	}
	return v, nil
}

// Eval evaluates the expression and returns a plain Go value: string,
// int64, uint64, float64, bool, []byte, nil, time.Time, time.Duration,
// []any or map[string]any.
func (x *Expr) Eval(s *State) (any, error) {
	v, err := x.eval(s)
	if err != nil {
		return nil, err
	}
	return toNative(v)
}

// EvalBool evaluates an expression that must yield a bool.
func (x *Expr) EvalBool(s *State) (bool, error) {
	if f, ok := x.evalFast(s); ok && f.k == fBool {
		return f.b, nil
	}
	v, err := x.evalCEL(s)
	if err != nil {
		return false, err
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, fmt.Errorf("%s: expression yielded %s, not a bool", x.where, v.Type().TypeName())
	}
	return bool(b), nil
}

// EvalString evaluates the expression and formats its value as
// interpolation does.
func (x *Expr) EvalString(s *State) (string, error) {
	if f, ok := x.evalFast(s); ok {
		switch f.k {
		case fStr:
			return f.s, nil
		case fInt:
			return strconv.FormatInt(f.n, 10), nil
		case fBool:
			return strconv.FormatBool(f.b), nil
		}
	}
	v, err := x.evalCEL(s)
	if err != nil {
		return "", err
	}
	if str, ok := v.(types.String); ok {
		return string(str), nil
	}
	n, err := toNative(v)
	if err != nil {
		return "", err
	}
	return formatValue(n), nil
}
