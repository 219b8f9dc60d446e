package policy

// Running a phase: rules in order, expressions ANDed, actions in order,
// terminating actions ending the phase, on_error deciding what an action's
// failure does.

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"

	"github.com/sluicehq/sluice/exchange"
)

var statePool = sync.Pool{New: func() any { return new(State) }}

func newState(ph Phase, c *exchange.Conn, x *exchange.Exchange, log *slog.Logger) *State {
	s := statePool.Get().(*State)
	*s = State{Phase: ph, Conn: c, X: x, Log: log}
	if s.Conn == nil && x != nil {
		s.Conn = x.Conn
	}
	return s
}

func (s *State) free() {
	s.release()
	*s = State{}
	statePool.Put(s)
}

// RunConnect runs the on_tcp_connect phase for a connection.
func (p *Policy) RunConnect(c *exchange.Conn) error {
	if len(p.phases[OnTCPConnect]) == 0 {
		return nil
	}
	s := newState(OnTCPConnect, c, nil, p.log)
	s.noResults = !p.results
	defer s.free()
	return p.run(OnTCPConnect, s)
}

// RunRequest runs the on_http_request phase for an exchange.
func (p *Policy) RunRequest(x *exchange.Exchange) error {
	if len(p.phases[OnHTTPRequest]) == 0 {
		return nil
	}
	s := newState(OnHTTPRequest, nil, x, p.logFor(x))
	s.noResults = !p.results
	defer s.free()
	return p.run(OnHTTPRequest, s)
}

// RunResponse runs the on_http_response phase for an exchange.
func (p *Policy) RunResponse(x *exchange.Exchange) error {
	if len(p.phases[OnHTTPResponse]) == 0 || x.Res == nil {
		return nil
	}
	s := newState(OnHTTPResponse, nil, x, p.logFor(x))
	s.noResults = !p.results
	defer s.free()
	return p.run(OnHTTPResponse, s)
}

func (p *Policy) logFor(x *exchange.Exchange) *slog.Logger {
	if x != nil && x.Log != nil {
		return x.Log
	}
	return p.log
}

// ActionError is an action (or expression) failure that ended a phase
// (on_error: halt). It reaches the proxy inside an *exchange.Error: 500, or
// the status of an *exchange.Error the action returned.
type ActionError struct {
	Policy string
	Rule   string
	Action string
	Where  string // file:line:col of the action
	Err    error
}

func (e *ActionError) Error() string {
	return fmt.Sprintf("policy %s: rule %q: action %s (%s): %v", e.Policy, e.Rule, e.Action, e.Where, e.Err)
}

func (e *ActionError) Unwrap() error { return e.Err }

// asHTTPError gives a phase failure its status for the proxy's single error
// path: the status an action chose (an *exchange.Error inside), else 500.
// The ActionError stays the cause, so logs show rule, action and position.
func asHTTPError(ae *ActionError) error {
	var xe *exchange.Error
	if errors.As(ae.Err, &xe) {
		return &exchange.Error{Status: xe.Status, Msg: xe.Msg, Err: ae}
	}
	return &exchange.Error{Status: 500, Msg: "traffic policy error", Err: ae}
}

func (p *Policy) run(ph Phase, s *State) error {
	for _, r := range p.phases[ph] {
		ok, err := r.matches(s)
		if err != nil && isMissingKey(err) {
			// ngrok's documented policies index optional headers and
			// parameters directly ("'beta' in req.headers['x-flags']" then a
			// catch-all rule): a missing key means "does not match".
			s.Log.Debug("policy rule skipped: expression reads a missing key",
				"policy", p.name, "rule", r.name, "err", err)
			ok, err = false, nil
		}
		if err != nil {
			// Any other expression that cannot be evaluated fails closed.
			return asHTTPError(&ActionError{Policy: p.name, Rule: r.name, Action: "expressions", Where: "", Err: err})
		}
		if !ok {
			continue
		}
		for _, a := range r.actions {
			var res *exchange.Response
			var fwd string
			if s.X != nil {
				res, fwd = s.X.Res, s.X.ForwardInternal
			}
			err := a.run(s)
			s.Invalidate()
			if err != nil {
				if errors.Is(err, exchange.ErrCloseConnection) {
					return err
				}
				if a.cont {
					s.Log.Warn("policy action failed; continuing (on_error: continue)",
						"policy", p.name, "rule", r.name, "action", a.typ, "at", a.where, "err", err)
					continue
				}
				return asHTTPError(&ActionError{Policy: p.name, Rule: r.name, Action: a.typ, Where: a.where, Err: err})
			}
			if a.terminating && a.enforce {
				return nil
			}
			// An action that answered in the request phase (a plugin, a
			// custom response) ends it as well.
			if ph == OnHTTPRequest && s.X != nil && (s.X.Res != res || s.X.ForwardInternal != fwd) {
				return nil
			}
		}
	}
	return nil
}

// isMissingKey reports a CEL evaluation error from indexing a map (headers,
// query parameters, vars) with a key it does not hold.
func isMissingKey(err error) bool {
	return strings.Contains(err.Error(), "no such key")
}

func (r *rule) matches(s *State) (bool, error) {
	for _, x := range r.exprs {
		ok, err := x.EvalBool(s)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// run calls the action, turning a panic into an error for this request.
func (a *boundAction) run(s *State) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("action panicked: %v", r)
		}
	}()
	return a.act.Run(s)
}

// inheritVars gives a request a copy of the variables its connection's
// on_tcp_connect phase set, so that request rules see them but cannot
// change them for the next request.
func inheritVars(x *exchange.Exchange) {
	if x.Vars != nil || x.Conn == nil || len(x.Conn.Vars) == 0 {
		return
	}
	x.Vars = maps.Clone(x.Conn.Vars)
	if r, ok := x.Vars[resultsKey].(map[string]any); ok {
		x.Vars[resultsKey] = maps.Clone(r)
	}
}
