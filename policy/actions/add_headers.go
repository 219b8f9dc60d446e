package actions

import (
	"github.com/sluicehq/sluice/policy"
)

// AddHeaders is the `add-headers` action: it adds headers to the request on
// its way to the upstream (on_http_request) or to the response on its way to
// the client (on_http_response).
//
//	actions:
//	  - type: add-headers
//	    config:
//	      headers:
//	        x-client-ip: "${conn.client_ip}"
//
// headers (map, required, 1-10 entries): header name → value; values support
// ${} interpolation, and YAML numbers or booleans are taken as text.
//
// Headers are added, never replaced: an existing header gets another value
// (use remove-headers first to replace one). The exception is `host`, which
// replaces the request's Host. Result variable:
// actions.ngrok.add_headers.headers_added (map of the added headers).
type AddHeaders struct {
	Headers map[string]policy.Template `yaml:"headers"`

	h headerTemplates
}

func newAddHeaders(c *policy.Config) (policy.Action, error) {
	a := &AddHeaders{}
	if err := c.Decode(a); err != nil {
		return nil, err
	}
	h, err := compileHeaders(c, "headers", a.Headers, true)
	if err != nil {
		return nil, err
	}
	a.h = h
	return a, nil
}

// Run adds the headers to the request or response of the current phase.
func (a *AddHeaders) Run(s *policy.State) error {
	var buf [8]string
	vals, err := a.h.evalInto(s, buf[:])
	if err != nil {
		return err
	}
	var added map[string]any
	if s.WantsResults() {
		added = make(map[string]any, len(vals))
	}
	switch {
	case s.Phase == policy.OnHTTPRequest && s.X != nil && s.X.Req != nil:
		if s.X.Req.Header == nil {
			s.X.Req.Header = make(map[string][]string)
		}
		for i, name := range a.h.names {
			if name == "host" {
				s.X.Req.Host = vals[i]
			} else {
				k := a.h.canon[i]
				s.X.Req.Header[k] = append(s.X.Req.Header[k], vals[i])
			}
			if added != nil {
				added[name] = vals[i]
			}
		}
	case s.Phase == policy.OnHTTPResponse && s.X != nil && s.X.Res != nil:
		if s.X.Res.Header == nil {
			s.X.Res.Header = make(map[string][]string)
		}
		for i, name := range a.h.names {
			k := a.h.canon[i]
			s.X.Res.Header[k] = append(s.X.Res.Header[k], vals[i])
			if added != nil {
				added[name] = vals[i]
			}
		}
	default:
		return nil
	}
	if added != nil {
		s.SetResult("add_headers", map[string]any{"headers_added": added})
	}
	return nil
}

func init() {
	policy.Register(policy.Spec{
		Type:   "add-headers",
		Phases: []policy.Phase{policy.OnHTTPRequest, policy.OnHTTPResponse},
		New:    newAddHeaders,
	})
}

var _ policy.Action = (*AddHeaders)(nil)
