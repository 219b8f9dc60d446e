package policy

// SetResult records an action's result for later rules, visible as
// actions.ngrok.<action>.<key> (for example SetResult("rate_limit", ...)).
func (s *State) SetResult(action string, v map[string]any) {
	vars := s.vars()
	ng, _ := vars[resultsKey].(map[string]any)
	if ng == nil {
		ng = map[string]any{}
		vars[resultsKey] = ng
	}
	ng[action] = v
	s.Invalidate()
}

// SetVar sets vars.<name>.
func (s *State) SetVar(name string, v any) {
	s.vars()[name] = v
	s.Invalidate()
}

// Var returns vars.<name>.
func (s *State) Var(name string) (any, bool) {
	v, ok := s.vars()[name]
	return v, ok
}

// Invalidate drops cached lazily computed variables. Call it after changing
// X.Req or X.Res so later expressions see the change; the engine also calls
// it after every action.
func (s *State) Invalidate() {
	if s.ev != nil {
		s.ev.reset()
	}
}

// resultsKey is the key under which action results are kept in the vars map;
// it cannot clash with a user variable name because of the space.
const resultsKey = " actions.ngrok"

// vars returns the variables map of the current scope: the exchange's in
// HTTP phases, the connection's in on_tcp_connect.
func (s *State) vars() map[string]any {
	if s.X != nil {
		if s.X.Vars == nil {
			s.X.Vars = map[string]any{}
		}
		return s.X.Vars
	}
	if s.Conn != nil {
		if s.Conn.Vars == nil {
			s.Conn.Vars = map[string]any{}
		}
		return s.Conn.Vars
	}
	if s.local == nil {
		s.local = map[string]any{}
	}
	return s.local
}
