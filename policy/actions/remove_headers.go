package actions

import (
	"net/http"
	"strings"

	"github.com/sluicehq/sluice/policy"
	"golang.org/x/net/http/httpguts"
)

// RemoveHeaders is the `remove-headers` action: it removes headers from the
// request before the upstream sees it (on_http_request) or from the
// response before the client sees it (on_http_response).
//
//	actions:
//	  - type: remove-headers
//	    config:
//	      headers: [x-client-version, x-trace-id]
//
// headers (list of names, required, 1-10 entries): matched
// case-insensitively; every value of each header is removed. Result
// variable: actions.ngrok.remove_headers.headers_removed (the names that
// were present and removed).
type RemoveHeaders struct {
	Headers []string `yaml:"headers"`

	canon []string
}

func newRemoveHeaders(c *policy.Config) (policy.Action, error) {
	a := &RemoveHeaders{}
	if err := c.Decode(a); err != nil {
		return nil, err
	}
	n := fieldNode(c.Node, "headers")
	if len(a.Headers) == 0 {
		return nil, c.Errorf(n, "headers: at least one header name is required")
	}
	if len(a.Headers) > maxHeaders {
		return nil, c.Errorf(n, "headers: at most %d headers are allowed, got %d", maxHeaders, len(a.Headers))
	}
	for i, h := range a.Headers {
		if !httpguts.ValidHeaderFieldName(h) {
			item := n
			if n != nil && i < len(n.Content) {
				item = n.Content[i]
			}
			return nil, c.Errorf(item, "headers[%d]: %q is not a valid header name", i, h)
		}
		a.canon = append(a.canon, http.CanonicalHeaderKey(h))
	}
	return a, nil
}

// Run removes the headers from the request or response of the phase.
func (a *RemoveHeaders) Run(s *policy.State) error {
	var h http.Header
	switch {
	case s.Phase == policy.OnHTTPRequest && s.X != nil && s.X.Req != nil:
		h = s.X.Req.Header
	case s.Phase == policy.OnHTTPResponse && s.X != nil && s.X.Res != nil:
		h = s.X.Res.Header
	}
	if h == nil {
		return nil
	}
	want := s.WantsResults()
	removed := []any{}
	for i, k := range a.canon {
		if delHeader(h, k) && want {
			removed = append(removed, a.Headers[i])
		}
	}
	if want {
		s.SetResult("remove_headers", map[string]any{"headers_removed": removed})
	}
	return nil
}

func init() {
	policy.Register(policy.Spec{
		Type:   "remove-headers",
		Phases: []policy.Phase{policy.OnHTTPRequest, policy.OnHTTPResponse},
		New:    newRemoveHeaders,
	})
}

var _ policy.Action = (*RemoveHeaders)(nil)

// delHeader removes every value of header k (canonical form), also under
// non-canonical spellings a transport may have stored.
func delHeader(h http.Header, k string) bool {
	_, found := h[k]
	delete(h, k)
	for name := range h {
		if strings.EqualFold(name, k) {
			delete(h, name)
			found = true
		}
	}
	return found
}
