package policy

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reloads *prometheus.CounterVec
	active  *prometheus.GaugeVec
}

var (
	metricsMu   sync.Mutex
	metricsByRg = map[prometheus.Registerer]*metrics{}
)

// metricsFor returns the collectors registered with reg, creating them
// once per registerer so that many handles share them. A nil reg gives
// unregistered collectors.
func metricsFor(reg prometheus.Registerer) *metrics {
	metricsMu.Lock()
	defer metricsMu.Unlock()
	if m, ok := metricsByRg[reg]; ok && reg != nil {
		return m
	}
	m := &metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_policy_reloads_total",
			Help: "Policy reload attempts by file and result (success, failure).",
		}, []string{"file", "result"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_policy_active_info",
			Help: "1 for the hash of the policy version each file is running.",
		}, []string{"file", "hash"}),
	}
	if reg != nil {
		m.reloads = register(reg, m.reloads)
		m.active = register(reg, m.active)
		metricsByRg[reg] = m
	}
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
