package actions

import (
	"net/http"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/policy"
)

// Deny is the `deny` action: it rejects the request (or connection) before
// it reaches the upstream, and ends the phase.
//
//	actions:
//	  - type: deny
//	    config:
//	      status_code: 404
//
// status_code (integer, default 403, 200-599): the status of the empty
// response in on_http_request. In on_tcp_connect, where there is no HTTP
// answer, the connection is closed and the action takes no config. Use
// custom-response to send a body. It sets no result variables.
type Deny struct {
	StatusCode int `yaml:"status_code"`
}

func newDeny(c *policy.Config) (policy.Action, error) {
	a := &Deny{StatusCode: http.StatusForbidden}
	if c.Phase == policy.OnTCPConnect && hasField(c.Node, "status_code") {
		return nil, c.Errorf(keyNode(c.Node, "status_code"), "status_code has no meaning in on_tcp_connect: the connection is closed")
	}
	if err := c.Decode(a); err != nil {
		return nil, err
	}
	if err := checkStatus(c, a.StatusCode, 200, 599); err != nil {
		return nil, err
	}
	return a, nil
}

// Run closes the connection or answers with the status.
func (a *Deny) Run(s *policy.State) error {
	if s.Phase == policy.OnTCPConnect || s.X == nil {
		return exchange.ErrCloseConnection
	}
	s.X.Res = respond(a.StatusCode, nil, "")
	return nil
}

func init() {
	policy.Register(policy.Spec{
		Type:        "deny",
		Phases:      []policy.Phase{policy.OnTCPConnect, policy.OnHTTPRequest},
		Terminating: true,
		New:         newDeny,
	})
}

var _ policy.Action = (*Deny)(nil)
