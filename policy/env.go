package policy

// The CEL environment: ngrok's variables (vars.go), macros and functions.
// It is built once per process; policies share it.

import (
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/parser"
)

var (
	envOnce sync.Once
	baseEnv *cel.Env
	envErr  error
)

// celEnv returns the shared environment. An error here is a programming
// error in the declarations, reported on every load.
func celEnv() (*cel.Env, error) {
	envOnce.Do(func() {
		opts := []cel.EnvOption{
			cel.DefaultUTCTimeZone(true),
			cel.CrossTypeNumericComparisons(true),
			ext.Strings(),
			ext.Encoders(),
			ext.Lists(),
			ext.Math(),
			ext.Sets(),
			cel.Macros(requestMacros...),
		}
		for _, v := range variables {
			opts = append(opts, cel.Variable(v.name, v.typ))
		}
		opts = append(opts, functions()...)
		baseEnv, envErr = cel.NewEnv(opts...)
	})
	return baseEnv, envErr
}

// requestMacros are ngrok's header/query/cookie helpers. They expand at
// parse time into reads of req.headers, req.url.query_params, ... so that
// they need no access to the request at run time and the phase check sees
// which variables they read.
var requestMacros = []parser.Macro{
	lookupMacro("getReqHeader", "_sluice_get", "req", "headers"),
	presenceMacro("hasReqHeader", "req", "headers"),
	lookupMacro("getResHeader", "_sluice_get", "res", "headers"),
	presenceMacro("hasResHeader", "res", "headers"),
	lookupMacro("getQueryParam", "_sluice_get", "req", "url", "query_params"),
	presenceMacro("hasQueryParam", "req", "url", "query_params"),
	lookupMacro("getReqCookie", "_sluice_first", "req", "cookies"),
	presenceMacro("hasReqCookie", "req", "cookies"),
	lookupMacro("getResCookie", "_sluice_first", "res", "cookies"),
	presenceMacro("hasResCookie", "res", "cookies"),
	// ngrok's secrets.get reads its hosted vaults, which sluice does not
	// have: say so at load instead of "undeclared reference".
	parser.NewReceiverMacro("get", 2, func(eh parser.ExprHelper, target ast.Expr, args []ast.Expr) (ast.Expr, *common.Error) {
		if target.Kind() == ast.IdentKind && target.AsIdent() == "secrets" {
			return nil, eh.NewError(target.ID(), "secrets.get is not supported: sluice has no secret vaults (ngrok-only)")
		}
		return nil, nil
	}),
}

func selectPath(eh parser.ExprHelper, path ...string) ast.Expr {
	e := eh.NewIdent(path[0])
	for _, f := range path[1:] {
		e = eh.NewSelect(e, f)
	}
	return e
}

// lookupMacro expands name(k) into fn(<path>, k).
func lookupMacro(name, fn string, path ...string) parser.Macro {
	return parser.NewGlobalMacro(name, 1, func(eh parser.ExprHelper, _ ast.Expr, args []ast.Expr) (ast.Expr, *common.Error) {
		return eh.NewCall(fn, selectPath(eh, path...), args[0]), nil
	})
}

// presenceMacro expands name(k) into k in <path>.
func presenceMacro(name string, path ...string) parser.Macro {
	return parser.NewGlobalMacro(name, 1, func(eh parser.ExprHelper, _ ast.Expr, args []ast.Expr) (ast.Expr, *common.Error) {
		return eh.NewCall(operators.In, args[0], selectPath(eh, path...)), nil
	})
}
