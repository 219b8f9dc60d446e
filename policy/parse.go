package policy

// Parsing a policy document (YAML or JSON) into compiled rules.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicehq/sluice/internal/reload"
	"go.yaml.in/yaml/v3"
)

// Options configure parsing and handles. All fields are optional.
type Options struct {
	Log        *slog.Logger
	Registerer prometheus.Registerer // metrics of handles; nil: none
	Watcher    *reload.Watcher       // file handles watch their file when set
}

func (o Options) log() *slog.Logger {
	if o.Log != nil {
		return o.Log
	}
	return slog.Default()
}

// Policy is one parsed, compiled and validated policy version. It is
// immutable and safe for concurrent use.
type Policy struct {
	name      string
	hash      string
	phases    [3][]*rule
	closers   []Closer
	log       *slog.Logger
	closeOnce sync.Once
	results   bool // some expression or template reads actions.*
}

type rule struct {
	name    string
	exprs   []*Expr
	actions []*boundAction
}

type boundAction struct {
	typ         string
	where       string // file:line:col of the action
	act         Action
	terminating bool
	enforce     bool
	cont        bool // on_error: continue
}

var phaseKeys = map[string]Phase{
	"on_tcp_connect":   OnTCPConnect,
	"on_http_request":  OnHTTPRequest,
	"on_http_response": OnHTTPResponse,
	// ngrok's first Traffic Policy format, still found in older policies.
	"inbound":  OnHTTPRequest,
	"outbound": OnHTTPResponse,
}

// Name returns the file name (or inline name) the policy came from.
func (p *Policy) Name() string { return p.name }

// Hash identifies the policy source: the first 12 hex digits of its SHA-256.
func (p *Policy) Hash() string { return p.hash }

// Empty reports whether the policy has no rules at all.
func (p *Policy) Empty() bool {
	return len(p.phases[0])+len(p.phases[1])+len(p.phases[2]) == 0
}

// Close releases resources held by actions (those implementing Closer). It
// is idempotent; a Handle calls it once the version has drained.
func (p *Policy) Close() {
	p.closeOnce.Do(func() {
		for _, c := range p.closers {
			if err := c.Close(); err != nil {
				p.log.Warn("policy action close failed", "policy", p.name, "err", err)
			}
		}
	})
}

// ParseFile reads and parses a policy file. All problems found are
// returned together (errors.Join), each "file:line:col: what".
func ParseFile(path string, opts ...Options) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(path, data, opts...)
}

// Parse parses a policy document; name is used in error positions.
func Parse(name string, data []byte, opts ...Options) (*Policy, error) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(name, err)
	}
	var root *yaml.Node
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		root = doc.Content[0]
	}
	return build(name, data, root, o)
}

// ParseNode builds a policy from an already parsed YAML node, e.g. an
// inline traffic_policy in sluice's config file; errors point into file.
// src is the file's text, used to place errors inside block scalars (may
// be nil).
func ParseNode(file string, src []byte, n *yaml.Node, opts ...Options) (*Policy, error) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if src == nil {
		if b, err := yaml.Marshal(n); err == nil {
			src = b // only for the hash; positions come from n
		}
	}
	return build(file, src, n, o)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlError turns a YAML syntax error into "file:line:col: message".
func yamlError(name string, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		rest := msg[len(m[0]):]
		// yaml.v3 reports scanner errors with 1-based lines but parser
		// errors ("did not find expected ...") with 0-based ones; the line
		// is then where the unfinished construct (e.g. a "{") started.
		if strings.HasPrefix(rest, "did not find expected") {
			line++
		}
		return &PosError{File: name, Line: line, Col: 1, Msg: "syntax error: " + rest}
	}
	return &PosError{File: name, Line: 1, Col: 1, Msg: "syntax error: " + strings.TrimPrefix(msg, "yaml: ")}
}

type builder struct {
	c    *compiler
	o    Options
	p    *Policy
	errs []error
}

func (b *builder) fail(n *yaml.Node, format string, args ...any) {
	b.errs = append(b.errs, b.c.errAt(n, -1, fmt.Sprintf(format, args...)))
}

func build(name string, src []byte, root *yaml.Node, o Options) (*Policy, error) {
	sum := sha256.Sum256(src)
	p := &Policy{name: name, hash: hex.EncodeToString(sum[:])[:12], log: o.log()}
	b := &builder{c: newCompiler(name, src), o: o, p: p}
	root = deref(root)
	switch {
	case root == nil || isNull(root):
		// An empty document is an empty policy.
	case root.Kind != yaml.MappingNode:
		b.fail(root, "a policy must be a mapping with on_tcp_connect, on_http_request and on_http_response, got %s", kindName(root))
	default:
		seen := map[string]bool{}
		for i := 0; i+1 < len(root.Content); i += 2 {
			k, v := root.Content[i], root.Content[i+1]
			ph, ok := phaseKeys[k.Value]
			if !ok {
				b.fail(k, "unknown field %q (known: on_http_request, on_http_response, on_tcp_connect)", k.Value)
				continue
			}
			if seen[ph.String()] {
				b.fail(k, "%s given twice (inbound/outbound are old names of on_http_request/on_http_response)", ph)
				continue
			}
			seen[ph.String()] = true
			b.phase(ph, v)
		}
	}
	if len(b.errs) > 0 {
		p.Close()
		return nil, joinErrs(b.errs)
	}
	p.results = b.c.results
	return p, nil
}

// deref follows YAML aliases (*name) to their anchored node.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func (b *builder) phase(ph Phase, n *yaml.Node) {
	n = deref(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		b.fail(n, "%s must be a list of rules, got %s", ph, kindName(n))
		return
	}
	b.c.phases = 1 << ph
	for i, rn := range n.Content {
		if r := b.rule(ph, i, rn); r != nil {
			b.p.phases[ph] = append(b.p.phases[ph], r)
		}
	}
}

func (b *builder) rule(ph Phase, idx int, n *yaml.Node) *rule {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		b.fail(n, "%s[%d]: a rule must be a mapping with name, expressions and actions, got %s", ph, idx, kindName(n))
		return nil
	}
	r := &rule{name: fmt.Sprintf("%s[%d]", ph, idx)}
	before := len(b.errs)
	var actionsNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		switch k.Value {
		case "name":
			if v.Kind != yaml.ScalarNode {
				b.fail(v, "rule name must be a string, got %s", kindName(v))
			} else if v.Value != "" {
				r.name = v.Value
			}
		case "expressions":
			if isNull(v) {
				continue
			}
			if v.Kind != yaml.SequenceNode {
				b.fail(v, "expressions must be a list of CEL strings, got %s", kindName(v))
				continue
			}
			for _, en := range v.Content {
				en = deref(en)
				if en.Kind != yaml.ScalarNode || isNull(en) {
					b.fail(en, "an expression must be a CEL string, got %s", kindName(en))
					continue
				}
				x, err := b.c.exprAt(en.Value, en, 0, true)
				if err != nil {
					b.errs = append(b.errs, err)
					continue
				}
				r.exprs = append(r.exprs, x)
			}
		case "actions":
			actionsNode = v
		default:
			b.fail(k, "unknown field %q in rule (known: actions, expressions, name)", k.Value)
		}
	}
	if actionsNode != nil && !isNull(actionsNode) {
		if actionsNode.Kind != yaml.SequenceNode {
			b.fail(actionsNode, "actions must be a list, got %s", kindName(actionsNode))
		} else {
			for _, an := range actionsNode.Content {
				if a := b.action(ph, an); a != nil {
					r.actions = append(r.actions, a)
				}
			}
		}
	}
	if len(b.errs) > before {
		return nil
	}
	return r
}

func (b *builder) action(ph Phase, n *yaml.Node) *boundAction {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		b.fail(n, "an action must be a mapping with type and config, got %s", kindName(n))
		return nil
	}
	var typNode, cfgNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		switch k.Value {
		case "type":
			typNode = v
		case "config":
			cfgNode = v
		default:
			b.fail(k, "unknown field %q in action (known: config, type)", k.Value)
			return nil
		}
	}
	if typNode != nil && (typNode.Kind != yaml.ScalarNode || isNull(typNode)) {
		b.fail(typNode, "action type must be a string, got %s", kindName(typNode))
		return nil
	}
	if typNode == nil || typNode.Value == "" {
		b.fail(n, "action without type (known types: %s)", strings.Join(Types(), ", "))
		return nil
	}
	typ := typNode.Value
	spec, ok := Lookup(typ)
	if !ok {
		b.fail(typNode, "unknown action type %q (known: %s)", typ, strings.Join(Types(), ", "))
		return nil
	}
	if !spec.allowed(ph) {
		var where []string
		for _, q := range spec.Phases {
			where = append(where, q.String())
		}
		b.fail(typNode, "action %q is not allowed in %s (only in %s)", typ, ph, strings.Join(where, ", "))
		return nil
	}
	cfg := &Config{Type: typ, Phase: ph, Log: b.p.log.With("action", typ), Enforce: true, OnError: "halt", c: b.c, at: n}
	if cfgNode != nil && !isNull(cfgNode) {
		if cfgNode.Kind != yaml.MappingNode {
			b.fail(cfgNode, "%s: config must be a mapping, got %s", typ, kindName(cfgNode))
			return nil
		}
		cfgNode = b.commonFields(cfg, cfgNode)
		if cfgNode == nil {
			return nil
		}
		cfg.Node = cfgNode
	}
	act, err := newAction(spec, cfg)
	if err != nil {
		var pe *PosError
		if !errors.As(err, &pe) {
			err = b.c.errAt(n, -1, typ+": "+err.Error())
		}
		b.errs = append(b.errs, err)
		return nil
	}
	if c, ok := act.(Closer); ok {
		b.p.closers = append(b.p.closers, c)
	}
	return &boundAction{
		typ:         typ,
		where:       fmt.Sprintf("%s:%d:%d", b.c.file, n.Line, n.Column),
		act:         act,
		terminating: spec.Terminating,
		enforce:     cfg.Enforce,
		cont:        cfg.OnError == "continue",
	}
}

// commonFields reads on_error (removed: the engine handles it for every
// action) and enforce (kept: only actions that support dry runs accept
// it). It returns a copy of the config mapping, or nil after an error.
func (b *builder) commonFields(cfg *Config, n *yaml.Node) *yaml.Node {
	cp := *n
	cp.Content = make([]*yaml.Node, 0, len(n.Content))
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "on_error":
			if v.Kind != yaml.ScalarNode || (v.Value != "halt" && v.Value != "continue") {
				b.fail(v, "%s: on_error must be halt or continue, got %s", cfg.Type, kindName(v))
				return nil
			}
			cfg.OnError = v.Value
			continue
		case "enforce":
			e, err := strconv.ParseBool(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil {
				b.fail(v, "%s: enforce must be true or false, got %s", cfg.Type, kindName(v))
				return nil
			}
			cfg.Enforce = e
		}
		cp.Content = append(cp.Content, k, v)
	}
	return &cp
}

// newAction calls the action's factory, turning a panic into an error: a
// bad config must never take the process down.
func newAction(spec Spec, cfg *Config) (a Action, err error) {
	defer func() {
		if r := recover(); r != nil {
			a, err = nil, fmt.Errorf("internal error while loading action: %v", r)
		}
	}()
	a, err = spec.New(cfg)
	if err == nil && a == nil {
		err = errors.New("internal error: action factory returned nil")
	}
	return a, err
}

// joinErrs flattens nested joined errors so each line is one problem.
func joinErrs(errs []error) error {
	var flat []error
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		if e != nil {
			flat = append(flat, e)
		}
	}
	for _, e := range errs {
		walk(e)
	}
	return errors.Join(flat...)
}

// Errors splits an error returned by Parse into its individual problems.
func Errors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// ValidateFiles parses each file and returns every problem found, one
// error per problem ("file:line:col: what"), for `sluice policy validate`.
func ValidateFiles(paths ...string) []error {
	var out []error
	for _, path := range paths {
		p, err := ParseFile(path, Options{Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			out = append(out, Errors(err)...)
			continue
		}
		p.Close()
	}
	return out
}
