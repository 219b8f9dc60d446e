package actions

import (
	"fmt"

	"github.com/sluicehq/sluice/exchange"

	"github.com/sluicehq/sluice/policy"
)

// URLRewrite is the `url-rewrite` action: it changes the URL the upstream
// receives while the client keeps seeing its own.
//
//	actions:
//	  - type: url-rewrite
//	    config:
//	      from: /products/([0-9]+)
//	      to: /products.php?id=$1
//
// from (string, optional): an unanchored regular expression (Go RE2 syntax)
// matched against the whole URL, scheme://host[:port]/path?query, not just
// the path; anchor a path with ^${req.url.scheme}://${req.url.authority}/...
// or select requests with the rule's expressions. Every match is replaced.
// Without from, the whole URL is replaced by to.
//
// to (string, required): the replacement; $1, $2 or $name insert groups
// (${...} is interpolation, so a group reference must not be followed by a
// letter, digit or _: "$1/x" works, "$1x" reads group "1x").
// A result that is only a path ("/new?q=1") keeps the scheme and host.
//
// Both support ${} interpolation, which runs before the regular expression.
// The rewrite may change the path, the query and the host (the Host header
// the upstream sees); it cannot change the scheme. Result variables:
// actions.ngrok.url_rewrite.url (the new URL), .matches (the first match and
// its groups), .error.code and .error.message.
type URLRewrite struct {
	From *policy.Template `yaml:"from"`
	To   *policy.Template `yaml:"to"`

	m *urlMatch
}

func newURLRewrite(c *policy.Config) (policy.Action, error) {
	a := &URLRewrite{}
	if err := c.Decode(a); err != nil {
		return nil, err
	}
	m, err := newURLMatch(c, a.From, fieldNode(c.Node, "from"), a.To)
	if err != nil {
		return nil, err
	}
	a.m = m
	return a, nil
}

// Run rewrites X.Req's host, path and query.
func (a *URLRewrite) Run(s *policy.State) error {
	// "OPTIONS *" has no URL to transform.
	if s.X == nil || s.X.Req == nil || s.X.Req.Path == "*" {
		return nil
	}
	r := s.X.Req
	orig := requestURL(r)
	out, m, err := a.m.apply(s, orig)
	if err != nil {
		setError(s, "url_rewrite", errCodeRewrite, err)
		return err
	}
	if m.loc == nil || out == orig {
		if s.WantsResults() {
			s.SetResult("url_rewrite", map[string]any{"matches": toAny(m.groups()), "url": orig})
		}
		return nil
	}
	u, err := resolveURL(orig, out)
	if err != nil {
		setError(s, "url_rewrite", errCodeRewrite, err)
		return err
	}
	if scheme := schemeOf(r); u.Scheme != scheme {
		err := fmt.Errorf("url-rewrite cannot change the scheme (%s → %s); use redirect", scheme, u.Scheme)
		setError(s, "url_rewrite", errCodeRewrite, err)
		return err
	}
	r.Host = u.Host
	r.Path = u.EscapedPath()
	if r.Path == "" {
		r.Path = "/"
	}
	r.RawQuery = u.RawQuery
	if s.WantsResults() {
		s.SetResult("url_rewrite", map[string]any{"matches": toAny(m.groups()), "url": requestURL(r)})
	}
	return nil
}

// schemeOf is the request's scheme as requestURL spells it.
func schemeOf(r *exchange.Request) string {
	if r.Scheme == "" {
		return "http"
	}
	return r.Scheme
}

// toAny converts a string list for CEL (list(dyn)).
func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func init() {
	policy.Register(policy.Spec{
		Type:   "url-rewrite",
		Phases: []policy.Phase{policy.OnHTTPRequest},
		New:    newURLRewrite,
	})
}

var _ policy.Action = (*URLRewrite)(nil)
