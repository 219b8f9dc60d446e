package cli

// Mapping of config endpoints to the proxy's EndpointConfig, and turning
// the proxy's errors about an endpoint back into config file positions.

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/proxy"
	"github.com/sluicehq/sluice/proxy/certs"
	"github.com/sluicehq/sluice/proxy/upstream"
)

// endpointConfig maps one config endpoint to the proxy's form.
func endpointConfig(cfg *config.Config, e *config.Endpoint, hooks exchange.Hooks) proxy.EndpointConfig {
	lb := e.LoadBalancing
	up := upstream.Config{
		URLs:    append([]string(nil), e.Upstream...),
		Balance: lb.Policy,
		Passive: upstream.Passive{
			MaxFails: int(lb.Passive.MaxFails),
			Window:   lb.Passive.FailWindow.D(),
			Eject:    lb.Passive.EjectDuration.D(),
			Disabled: lb.Passive.Disabled,
		},
	}
	if hc := lb.HealthCheck; hc != nil {
		up.HealthCheck = &upstream.HealthCheck{
			Path: hc.Path, Interval: hc.Interval.D(), Timeout: hc.Timeout.D(),
			Healthy: int(hc.Healthy), Unhealthy: int(hc.Unhealthy),
		}
	}
	pairs := make([]certs.Pair, 0, len(e.TLS))
	for _, t := range e.TLS {
		pairs = append(pairs, certs.Pair{Cert: t.Cert, Key: t.Key})
	}
	limits := proxyLimits(cfg.Limits.Merge(e.Limits))
	return proxy.EndpointConfig{
		URL:                e.URL,
		Listen:             e.Listen,
		Upstream:           up,
		TLS:                pairs,
		InsecureSkipVerify: e.InsecureSkipVerify,
		Hooks:              hooks,
		Limits:             &limits,
	}
}

func proxyLimits(l config.Limits) proxy.Limits {
	return proxy.Limits{
		ReadHeaderTimeout:     l.ReadHeaderTimeout.D(),
		IdleTimeout:           l.IdleTimeout.D(),
		BodyReadTimeout:       l.BodyReadTimeout.D(),
		DialTimeout:           l.DialTimeout.D(),
		ResponseHeaderTimeout: l.ResponseHeaderTimeout.D(),
		ShutdownTimeout:       l.ShutdownTimeout.D(),
		MaxHeaderBytes:        int(l.MaxHeaderBytes),
		MaxBodyBytes:          int64(l.MaxBodyBytes),
		UpstreamStallTimeout:  l.UpstreamStallTimeout.D(),
		UpstreamIdleTimeout:   l.UpstreamIdleTimeout.D(),
		MaxIdleConnsPerHost:   int(l.UpstreamIdleConns),
	}
}

var (
	applyIndex  = regexp.MustCompile(`endpoints\[(\d+)\]`)
	applyListen = regexp.MustCompile(`listen (\S+?):? `)
	applyURL    = regexp.MustCompile(`endpoint (\S+) `)
)

// locateApplyError prefixes a proxy error with the file:line:col of the
// entry it is about (named by index, listen address or URL), so that it
// reads like any other config error.
func locateApplyError(cfg *config.Config, err error) error {
	msg := err.Error()
	if m := applyIndex.FindStringSubmatch(msg); m != nil {
		if i, _ := strconv.Atoi(m[1]); i < len(cfg.Endpoints) {
			return fmt.Errorf("%s: %w", endpointPos(cfg, i), err)
		}
	}
	// When several entries match, the last one is the one that clashed
	// with an earlier entry (duplicates, a port taken by a tcp endpoint).
	if m := applyURL.FindStringSubmatch(msg); m != nil {
		for i := len(cfg.Endpoints) - 1; i >= 0; i-- {
			if cfg.Endpoints[i].URL == m[1] {
				return fmt.Errorf("%s: %w", endpointPos(cfg, i), err)
			}
		}
	}
	if m := applyListen.FindStringSubmatch(msg); m != nil {
		for i := len(cfg.Endpoints) - 1; i >= 0; i-- {
			if bindOf(&cfg.Endpoints[i]) == m[1] {
				return fmt.Errorf("%s: %w", endpointPos(cfg, i), err)
			}
		}
	}
	return err
}

// bindOf is the endpoint's listen address as the proxy derives it.
func bindOf(e *config.Endpoint) string {
	if e.Listen != "" {
		return e.Listen
	}
	u, err := url.Parse(e.URL)
	if err != nil {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443", "tls": "443"}[e.Scheme]
	}
	host := u.Hostname()
	if host == "localhost" || net.ParseIP(host) != nil {
		return net.JoinHostPort(host, port)
	}
	return ":" + port
}

func endpointPos(cfg *config.Config, i int) string {
	e := cfg.Endpoints[i]
	if cfg.File == "" || e.Line == 0 {
		return e.Path
	}
	return fmt.Sprintf("%s:%d:%d: %s", cfg.File, e.Line, e.Col, e.Path)
}
