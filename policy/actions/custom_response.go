package actions

import (
	"net/http"

	"github.com/sluicehq/sluice/policy"
)

// CustomResponse is the `custom-response` action: it answers with a fixed
// (or interpolated) response. In on_http_request the upstream is never
// contacted (on_http_response rules still run on the answer); in
// on_http_response it replaces the upstream's response. It ends the phase.
//
//	actions:
//	  - type: custom-response
//	    config:
//	      status_code: 503
//	      headers:
//	        content-type: text/html
//	      body: <h1>Down for maintenance</h1>
//
// status_code (integer, default 200, 200-599). body (string, optional, ${}
// interpolation). headers (map, optional, up to 10, ${} interpolation).
// Without a content-type header one is inferred from the body (JSON is
// recognised; otherwise the WHATWG sniffing rules apply). content is the
// old name of body, which ngrok's older examples still use. It sets no
// result variables.
type CustomResponse struct {
	StatusCode int                        `yaml:"status_code"`
	Body       *policy.Template           `yaml:"body"`
	Content    *policy.Template           `yaml:"content"`
	Headers    map[string]policy.Template `yaml:"headers"`

	h         headerTemplates
	hasCT     bool
	staticCT  string // inferred content type of a static body
	bodyFixed bool
}

func newCustomResponse(c *policy.Config) (policy.Action, error) {
	a := &CustomResponse{StatusCode: http.StatusOK}
	if err := c.Decode(a); err != nil {
		return nil, err
	}
	if err := checkStatus(c, a.StatusCode, 200, 599); err != nil {
		return nil, err
	}
	if a.Content != nil {
		if a.Body != nil {
			return nil, c.Errorf(fieldNode(c.Node, "content"), "content is the old name of body: give one of them")
		}
		a.Body, a.Content = a.Content, nil
	}
	var err error
	if a.h, err = compileHeaders(c, "headers", a.Headers, false); err != nil {
		return nil, err
	}
	for _, n := range a.h.names {
		if n == "content-type" {
			a.hasCT = true
		}
	}
	if a.Body != nil {
		if b, ok := a.Body.Static(); ok {
			a.bodyFixed = true
			a.staticCT = sniffContentType(b)
		}
	}
	return a, nil
}

// Run sets the response.
func (a *CustomResponse) Run(s *policy.State) error {
	if s.X == nil {
		return nil
	}
	var body string
	if a.Body != nil {
		var err error
		if body, err = a.Body.Eval(s); err != nil {
			return err
		}
	}
	vals, err := a.h.eval(s)
	if err != nil {
		return err
	}
	h := http.Header{}
	for i, name := range a.h.names {
		h.Add(name, vals[i])
	}
	if !a.hasCT && body != "" {
		ct := a.staticCT
		if !a.bodyFixed {
			ct = sniffContentType(body)
		}
		h.Set("Content-Type", ct)
	}
	if old := s.X.Res; old != nil && old.Body != nil && !old.Generated {
		old.Body.Close() // replacing the upstream's answer: release it now
	}
	s.X.Res = respond(a.StatusCode, h, body)
	return nil
}

func init() {
	policy.Register(policy.Spec{
		Type:        "custom-response",
		Phases:      []policy.Phase{policy.OnHTTPRequest, policy.OnHTTPResponse},
		Terminating: true,
		New:         newCustomResponse,
	})
}

var _ policy.Action = (*CustomResponse)(nil)
