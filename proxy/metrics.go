package proxy

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicehq/sluice/proxy/upstream"
)

// metrics are the proxy's Prometheus collectors. They are created per
// Server and registered on Options.Registerer; per-endpoint children are
// curried once when the endpoint is built so that requests do no label
// lookups (status-code counters are cached per code on first use).
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	reqBytes *prometheus.CounterVec
	resBytes *prometheus.CounterVec
	active   *prometheus.GaugeVec
	healthy  *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_http_requests_total",
			Help: "HTTP requests answered, by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_http_request_duration_seconds",
			Help:    "Time from request header to the end of the response.",
			Buckets: prometheus.DefBuckets,
		}, []string{"endpoint"}),
		reqBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_http_request_bytes_total",
			Help: "Request body bytes received from clients (and bytes piped client to upstream).",
		}, []string{"endpoint"}),
		resBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_http_response_bytes_total",
			Help: "Response body bytes sent to clients (and bytes piped upstream to client).",
		}, []string{"endpoint"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_active_connections",
			Help: "Open client connections, by endpoint (the one chosen at connect time).",
		}, []string{"endpoint"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_upstream_healthy",
			Help: "1 when the upstream target is considered healthy.",
		}, []string{"endpoint", "upstream"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.reqBytes, m.resBytes, m.active, m.healthy} {
		if err := reg.Register(c); err != nil {
			// A second Server on the same registry shares the collectors.
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				switch c.(type) {
				case *prometheus.CounterVec:
					cv := are.ExistingCollector.(*prometheus.CounterVec)
					switch c {
					case m.requests:
						m.requests = cv
					case m.reqBytes:
						m.reqBytes = cv
					case m.resBytes:
						m.resBytes = cv
					}
				case *prometheus.HistogramVec:
					m.duration = are.ExistingCollector.(*prometheus.HistogramVec)
				case *prometheus.GaugeVec:
					gv := are.ExistingCollector.(*prometheus.GaugeVec)
					if c == m.active {
						m.active = gv
					} else {
						m.healthy = gv
					}
				}
			}
		}
	}
	return m
}

// epMetrics are one endpoint's curried collectors.
type epMetrics struct {
	id       string
	requests *prometheus.CounterVec
	codes    [600]atomic.Pointer[counter]
	duration prometheus.Observer
	reqBytes prometheus.Counter
	resBytes prometheus.Counter
	active   prometheus.Gauge
	healthy  *prometheus.GaugeVec
	mu       sync.Mutex
}

type counter struct{ c prometheus.Counter }

func (m *metrics) forEndpoint(e *endpoint) *epMetrics {
	if m == nil {
		return nil
	}
	id := e.ep.ID
	return &epMetrics{
		id:       id,
		requests: m.requests.MustCurryWith(prometheus.Labels{"endpoint": id}),
		duration: m.duration.WithLabelValues(id),
		reqBytes: m.reqBytes.WithLabelValues(id),
		resBytes: m.resBytes.WithLabelValues(id),
		active:   m.active.WithLabelValues(id),
		healthy:  m.healthy,
	}
}

func (m *epMetrics) activeConns() prometheus.Gauge {
	if m == nil {
		return nil
	}
	return m.active
}

// observe records one finished request.
func (m *epMetrics) observe(code int, seconds float64, in, out int64) {
	if m == nil {
		return
	}
	if code < 0 || code >= len(m.codes) {
		code = 0
	}
	c := m.codes[code].Load()
	if c == nil {
		c = &counter{m.requests.WithLabelValues(strconv.Itoa(code))}
		m.codes[code].Store(c)
	}
	c.c.Inc()
	m.duration.Observe(seconds)
	if in > 0 {
		m.reqBytes.Add(float64(in))
	}
	if out > 0 {
		m.resBytes.Add(float64(out))
	}
}

func (m *epMetrics) setHealthy(t *upstream.Target, ok bool) {
	if m == nil {
		return
	}
	v := 0.0
	if ok {
		v = 1
	}
	m.healthy.WithLabelValues(m.id, t.URL.String()).Set(v)
}
