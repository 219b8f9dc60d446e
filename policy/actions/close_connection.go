package actions

import (
	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/policy"
)

// CloseConnection is the `close-connection` action: it closes the client's
// connection at once, without an HTTP answer (an h2 client sees its
// connection go away). It takes no config, sets no result variables and
// ends the phase. Useful against abusive clients, after rate-limit.
//
//	actions:
//	  - type: close-connection
type CloseConnection struct{}

func newCloseConnection(c *policy.Config) (policy.Action, error) {
	a := &CloseConnection{}
	if err := c.Decode(a); err != nil {
		return nil, err
	}
	return a, nil
}

// Run asks the proxy to close the connection.
func (*CloseConnection) Run(*policy.State) error { return exchange.ErrCloseConnection }

func init() {
	policy.Register(policy.Spec{
		Type:        "close-connection",
		Phases:      []policy.Phase{policy.OnTCPConnect, policy.OnHTTPRequest},
		Terminating: true,
		New:         newCloseConnection,
	})
}

var _ policy.Action = (*CloseConnection)(nil)
