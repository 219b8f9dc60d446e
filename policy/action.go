package policy

// This file is the contract between the engine and every action (built-in,
// WAF, GeoIP, Wasm plugin). Keep it small: a new action is one file that
// declares a config struct, implements Action and calls Register in init().

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/sluicehq/sluice/exchange"
	"go.yaml.in/yaml/v3"
)

// Phase is one of the three Traffic Policy phases.
type Phase int

const (
	OnTCPConnect Phase = iota
	OnHTTPRequest
	OnHTTPResponse
)

func (p Phase) String() string {
	switch p {
	case OnTCPConnect:
		return "on_tcp_connect"
	case OnHTTPRequest:
		return "on_http_request"
	case OnHTTPResponse:
		return "on_http_response"
	}
	return fmt.Sprintf("phase(%d)", int(p))
}

// Action is a provisioned action: its config was decoded, validated and
// compiled at load. Run is called per connection/request/response and must
// be safe for concurrent use.
//
// To answer the request, an action sets s.X.Res (the engine then ends the
// phase when the action's Spec is Terminating). To close the connection it
// returns exchange.ErrCloseConnection. Any other error is handled according
// to the action's on_error setting.
type Action interface {
	Run(s *State) error
}

// Closer is implemented by actions that hold resources (plugin instances,
// rate-limit tables, WAF engines); Close runs once the policy version that
// owns the action was swapped out and drained.
type Closer interface {
	Close() error
}

// Spec describes an action type to the registry.
type Spec struct {
	Type        string  // the `type:` users write, e.g. "add-headers"
	Phases      []Phase // phases the action may appear in; empty means all
	Terminating bool    // ends its phase once it ran (deny, custom-response, ...)
	New         func(c *Config) (Action, error)
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Spec{}
)

// Register adds an action type. It is meant for init() functions and panics
// on a duplicate or incomplete spec, which is a programming error.
func Register(s Spec) {
	if s.Type == "" || s.New == nil {
		panic("policy: Register: spec needs Type and New")
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[s.Type]; dup {
		panic("policy: Register: duplicate action type " + s.Type)
	}
	registry[s.Type] = s
}

// Lookup returns the spec registered for an action type.
func Lookup(typ string) (Spec, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	s, ok := registry[typ]
	return s, ok
}

// Types lists the registered action types, sorted.
func Types() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// allowed reports whether the spec may run in phase p.
func (s Spec) allowed(p Phase) bool {
	if len(s.Phases) == 0 {
		return true
	}
	for _, q := range s.Phases {
		if q == p {
			return true
		}
	}
	return false
}

// Config is one action's raw config at load time, with what is needed to
// decode it strictly (Decode), report positioned errors (Errorf) and compile
// the CEL it contains (CompileTemplate, CompileExpr); see config.go.
type Config struct {
	Type  string
	Phase Phase
	Node  *yaml.Node // the `config:` mapping; nil when the action has none
	Log   *slog.Logger

	// Enforce is false when the config says `enforce: false` (ngrok's dry
	// run: evaluate and record results, don't act). The engine reads it but
	// leaves the key in Node: an action that supports dry runs declares an
	// `enforce` field in its config struct (or ignores it and reads this);
	// one that does not rejects the key as unknown.
	Enforce bool
	// OnError is "halt" (default) or "continue". The engine handles it for
	// every action and removes the key from Node, so config structs need no
	// on_error field.
	OnError string

	// unexported fields (file name, CEL environment, ...) are set by the
	// engine; see config.go.
	c  *compiler
	at *yaml.Node // the action's mapping, for errors without a node
}

// State is what an action sees while it runs. It is valid only during Run:
// the engine recycles it afterwards, so an action must not keep it (copy
// what a streaming body wrapper needs instead). See state.go and eval.go
// for SetVar, SetResult, Invalidate and the lazy CEL activation.
type State struct {
	Phase Phase
	Conn  *exchange.Conn
	X     *exchange.Exchange // nil in on_tcp_connect
	Log   *slog.Logger

	// unexported: lazy CEL activation, see eval.go.
	ev    *evaluation
	local map[string]any // vars when there is neither X nor Conn (tests)

	noResults bool // the policy never reads actions.*
}

// WantsResults reports whether anything can read the result variables
// (actions.ngrok.*) of this run. Actions skip building them when not: in
// most policies nothing reads them, and they cost allocations per request.
func (s *State) WantsResults() bool { return !s.noResults }

// Interface guard for documentation: exchange.Hooks is what the engine
// offers to the proxy (see Handle).
var _ exchange.Hooks = (*Handle)(nil)
