package config

import (
	"log/slog"
	"strings"
)

// LogValue summarises the config for a debug log line. It is built from an
// allow-list of fields, so secrets the file may hold (tunnel authtokens,
// values expanded from ${ENV}) never reach a log: only addresses, URLs and
// file names do.
func (c *Config) LogValue() slog.Value {
	eps := make([]string, 0, len(c.Endpoints))
	for _, e := range c.Endpoints {
		s := e.URL + " -> " + strings.Join(e.Upstream, ",")
		switch {
		case e.TrafficPolicyFile != "":
			s += " policy=" + e.TrafficPolicyFile
		case e.TrafficPolicy != nil:
			s += " policy=inline"
		}
		eps = append(eps, s)
	}
	return slog.GroupValue(
		slog.String("file", c.File),
		slog.String("admin", c.Admin),
		slog.Any("trusted_proxies", []string(c.TrustedProxies)),
		slog.Any("endpoints", eps),
	)
}
