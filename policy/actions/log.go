package actions

import (
	"log/slog"
	"sort"

	"github.com/sluicehq/sluice/policy"
)

// Log is the `log` action: it writes one structured log line (log/slog, at
// info level, message "traffic policy log") with the request id and the
// configured metadata. ngrok sends the same metadata to its event stream;
// sluice's logs are that stream.
//
//	actions:
//	  - type: log
//	    config:
//	      metadata:
//	        message: blocked by restrict-ips
//	        client: ${conn.client_ip}
//
// metadata (map, required, at least one entry): key → value; string values
// support ${} interpolation (a lone ${expr} keeps its type), other YAML
// values are logged as they are. Result variable: actions.ngrok.log.metadata
// (the evaluated map).
type Log struct {
	Metadata map[string]any `yaml:"metadata"`

	keys []string
	vals []*value
}

func newLog(c *policy.Config) (policy.Action, error) {
	a := &Log{}
	if err := c.Decode(a); err != nil {
		return nil, err
	}
	n := fieldNode(c.Node, "metadata")
	if len(a.Metadata) == 0 || n == nil || n == c.Node {
		return nil, c.Errorf(n, "metadata: at least one entry is required")
	}
	for k := range a.Metadata {
		a.keys = append(a.keys, k)
	}
	sort.Strings(a.keys)
	for _, k := range a.keys {
		v, err := compileValue(c, fieldNode(n, k))
		if err != nil {
			return nil, err
		}
		a.vals = append(a.vals, v)
	}
	return a, nil
}

// Run evaluates the metadata and logs it.
func (a *Log) Run(s *policy.State) error {
	md := make(map[string]any, len(a.keys))
	attrs := make([]any, 0, len(a.keys))
	for i, k := range a.keys {
		v, err := a.vals[i].eval(s)
		if err != nil {
			return err
		}
		md[k] = v
		attrs = append(attrs, slog.Any(k, v))
	}
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	args := []any{"phase", s.Phase.String()}
	// A request's logger (exchange.Exchange.Log) adds its request id.
	if s.X == nil && s.Conn != nil {
		args = append(args, "conn_id", s.Conn.ID)
	}
	args = append(args, slog.Group("metadata", attrs...))
	log.Info("traffic policy log", args...)
	s.SetResult("log", map[string]any{"metadata": md})
	return nil
}

func init() {
	policy.Register(policy.Spec{Type: "log", New: newLog})
}

var _ policy.Action = (*Log)(nil)
