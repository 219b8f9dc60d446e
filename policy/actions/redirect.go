package actions

import (
	"net/http"

	"github.com/sluicehq/sluice/policy"
)

// Redirect is the `redirect` action: it answers with a 3xx whose Location is
// the request URL transformed by from/to, so the client asks again there.
//
//	actions:
//	  - type: redirect
//	    config:
//	      from: ^(https?://[^/]+)/products(.*)$
//	      to: $1/store/products$2
//	      status_code: 301
//	      headers:
//	        x-redirected: "true"
//
// from (string, optional) and to (string, required) work as in url-rewrite:
// from is an unanchored regular expression over the whole URL, every match
// is replaced by to ($1-style groups), no from means the whole URL is
// replaced, ${} interpolation runs first. A relative result is resolved
// against the request URL; characters not allowed in a URL (such as a space
// from an interpolated city) are percent-encoded.
//
// status_code (integer, default 302): a 3xx code. headers (map, optional, up
// to 10): extra response headers, with ${} interpolation.
//
// When from does not match, or the new URL equals the old one, nothing
// happens and the next action runs; otherwise the redirect answers the
// request and ends the phase. Result variables: actions.ngrok.redirect.url,
// .matches, .error.code, .error.message.
type Redirect struct {
	From       *policy.Template           `yaml:"from"`
	To         *policy.Template           `yaml:"to"`
	StatusCode int                        `yaml:"status_code"`
	Headers    map[string]policy.Template `yaml:"headers"`

	m *urlMatch
	h headerTemplates
}

func newRedirect(c *policy.Config) (policy.Action, error) {
	a := &Redirect{StatusCode: http.StatusFound}
	if err := c.Decode(a); err != nil {
		return nil, err
	}
	if err := checkStatus(c, a.StatusCode, 300, 399); err != nil {
		return nil, err
	}
	m, err := newURLMatch(c, a.From, fieldNode(c.Node, "from"), a.To)
	if err != nil {
		return nil, err
	}
	a.m = m
	if a.h, err = compileHeaders(c, "headers", a.Headers, false); err != nil {
		return nil, err
	}
	return a, nil
}

// Run answers with the redirect when the URL changed.
func (a *Redirect) Run(s *policy.State) error {
	// "OPTIONS *" has no URL to transform.
	if s.X == nil || s.X.Req == nil || s.X.Req.Path == "*" {
		return nil
	}
	orig := requestURL(s.X.Req)
	out, m, err := a.m.apply(s, orig)
	if err != nil {
		setError(s, "redirect", errCodeRedirect, err)
		return err
	}
	if m.loc == nil {
		return nil
	}
	u, err := resolveURL(orig, out)
	if err != nil {
		setError(s, "redirect", errCodeRedirect, err)
		return err
	}
	loc := u.String()
	if loc == orig {
		return nil // ngrok: a redirect to the same URL is skipped
	}
	vals, err := a.h.eval(s)
	if err != nil {
		setError(s, "redirect", errCodeRedirect, err)
		return err
	}
	h := http.Header{}
	for i, name := range a.h.names {
		h.Add(name, vals[i])
	}
	h.Set("Location", loc)
	s.X.Res = respond(a.StatusCode, h, "")
	if s.WantsResults() {
		s.SetResult("redirect", map[string]any{"matches": toAny(m.groups()), "url": loc})
	}
	return nil
}

func init() {
	policy.Register(policy.Spec{
		Type:   "redirect",
		Phases: []policy.Phase{policy.OnHTTPRequest},
		New:    newRedirect,
	})
}

var _ policy.Action = (*Redirect)(nil)
