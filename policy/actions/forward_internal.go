package actions

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/policy"
)

// ForwardInternal is the `forward-internal` action: it sends the request to
// an internal endpoint (one whose URL ends in .internal) instead of this
// endpoint's upstream; the internal endpoint's own traffic policy then runs
// on it. It ends the phase.
//
//	actions:
//	  - type: forward-internal
//	    config:
//	      url: https://billing.internal
//
// url (string, required, ${} interpolation): the internal endpoint, as
// scheme://name.internal[:port]. Without a scheme the request's scheme is
// used; a path, query or user info is an error. The URL is normalised
// (lower-case host, default port dropped) before the proxy looks it up.
//
// on_error (halt | continue, default halt) is handled by the policy engine:
// with continue, a URL that cannot be evaluated or an internal endpoint
// that does not exist lets the next action run (ngrok's failover: forward,
// else answer with a custom-response); with halt those get a 502. An error
// of the internal endpoint's own upstream (down, timing out) is answered
// by the proxy as for any endpoint. It sets no result variables.
type ForwardInternal struct {
	URL *policy.Template `yaml:"url"`

	static string // normalised URL when url has no interpolation
}

func newForwardInternal(c *policy.Config) (policy.Action, error) {
	a := &ForwardInternal{}
	if err := c.Decode(a); err != nil {
		return nil, err
	}
	if a.URL == nil {
		return nil, c.Errorf(nil, "missing required field \"url\"")
	}
	if s, ok := a.URL.Static(); ok {
		norm, err := normaliseInternalURL(s, "")
		if err != nil {
			return nil, c.Errorf(fieldNode(c.Node, "url"), "url: %v", err)
		}
		a.static = norm
	}
	return a, nil
}

// normaliseInternalURL checks an internal endpoint URL and returns it as
// scheme://host[:port]. defScheme fills in a missing scheme ("" keeps the
// scheme open until the request is known: the result then has none).
func normaliseInternalURL(raw, defScheme string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", fmt.Errorf("is empty")
	}
	withScheme := raw
	if !strings.Contains(raw, "://") {
		withScheme = "x-none://" + raw
	}
	u, err := url.Parse(withScheme)
	if err != nil {
		return "", fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q: only scheme, host and port are allowed", raw)
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if !strings.HasSuffix(host, ".internal") || host == ".internal" {
		return "", fmt.Errorf("%q is not an internal endpoint (its host must end in .internal)", raw)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme == "x-none" {
		scheme = defScheme
	}
	switch scheme {
	case "", "http", "https", "tcp", "tls":
	default:
		return "", fmt.Errorf("%q: scheme must be http, https, tcp or tls", raw)
	}
	port := u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	hostport := host
	if port != "" {
		hostport = net.JoinHostPort(host, port)
	}
	if scheme == "" {
		return hostport, nil
	}
	return scheme + "://" + hostport, nil
}

// Run sets X.ForwardInternal; the proxy dispatches after the phase.
func (a *ForwardInternal) Run(s *policy.State) error {
	if s.X == nil || s.X.Req == nil {
		return nil
	}
	target := a.static
	if target == "" || !strings.Contains(target, "://") {
		raw := target
		if raw == "" {
			var err error
			if raw, err = a.URL.Eval(s); err != nil {
				return fmt.Errorf("url: %w", err)
			}
		}
		norm, err := normaliseInternalURL(raw, schemeOf(s.X.Req))
		if err != nil {
			return fmt.Errorf("url: %w", err)
		}
		target = norm
	}
	if in := s.X.Internals; in != nil && !in.HasInternal(target) {
		return errNoInternal
	}
	s.X.ForwardInternal = target
	return nil
}

// errNoInternal is the proxy's own answer to a missing internal endpoint.
var errNoInternal = &exchange.Error{Status: http.StatusBadGateway, Msg: "forward-internal: no such internal endpoint"}

func init() {
	policy.Register(policy.Spec{
		Type:        "forward-internal",
		Phases:      []policy.Phase{policy.OnHTTPRequest},
		Terminating: true,
		New:         newForwardInternal,
	})
}

var _ policy.Action = (*ForwardInternal)(nil)
