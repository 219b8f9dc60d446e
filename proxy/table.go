package proxy

import (
	"fmt"

	"github.com/sluicehq/sluice/exchange"
)

// table is one complete, immutable routing state built by Apply.
type table struct {
	endpoints []*endpoint
	binds     map[string]*routes   // by listen key
	internal  map[string]*endpoint // internal endpoints by host
	merged    *routes              // every non-internal endpoint; for ServeListener
}

// routes are the endpoints reachable through one listener.
type routes struct {
	plain       hostRouter // http:// endpoints
	tls         hostRouter // https:// endpoints, by SNI then Host
	passthrough hostRouter // tls:// endpoints, by SNI
	tcp         *endpoint  // tcp:// endpoint; owns the listener alone
	tcpMulti    bool
}

func (r *routes) add(e *endpoint) error {
	switch e.kind {
	case kindHTTP:
		return r.plain.add(e)
	case kindHTTPS:
		if o := r.passthrough.has(e); o != nil {
			return fmt.Errorf("duplicate host %s (also %s, passed through)", hostName(e), o.ep.URL)
		}
		return r.tls.add(e)
	case kindTLS:
		if o := r.tls.has(e); o != nil {
			return fmt.Errorf("duplicate host %s (also %s, terminated)", hostName(e), o.ep.URL)
		}
		return r.passthrough.add(e)
	case kindTCP:
		if r.tcp != nil {
			r.tcpMulti = true
			return fmt.Errorf("port already used by tcp endpoint %s", r.tcp.ep.URL)
		}
		r.tcp = e
	}
	return nil
}

// matchTLS picks the endpoint for a ClientHello's server name among the
// port's passthrough and terminating endpoints alike: the most specific
// match wins (see specificity), whichever kind it is.
func (r *routes) matchTLS(sni string) *endpoint {
	p, t := r.passthrough.match(sni), r.tls.match(sni)
	if specificity(p) > specificity(t) {
		return p
	}
	return t
}

// hostName is how errors name an endpoint's host.
func hostName(e *endpoint) string {
	if e.host == "" {
		return "(any)"
	}
	return e.host
}

func (r *routes) hasTLS() bool   { return !r.tls.empty() || !r.passthrough.empty() }
func (r *routes) hasPlain() bool { return !r.plain.empty() }

func buildTable(eps []*endpoint) (*table, error) {
	t := &table{
		endpoints: eps,
		binds:     map[string]*routes{},
		internal:  map[string]*endpoint{},
		merged:    &routes{},
	}
	for _, e := range eps {
		if e.ep.Internal {
			if o := t.internal[e.host]; o != nil {
				return nil, fmt.Errorf("endpoint %s: duplicate internal endpoint (also %s)", e.ep.URL, o.ep.URL)
			}
			t.internal[e.host] = e
			continue
		}
		r := t.binds[e.bind]
		if r == nil {
			r = &routes{}
			t.binds[e.bind] = r
		}
		if err := r.add(e); err != nil {
			return nil, fmt.Errorf("endpoint %s (listen %s): %w", e.ep.URL, e.bind, err)
		}
		if r.tcp != nil && (r.hasTLS() || r.hasPlain()) {
			return nil, fmt.Errorf("endpoint %s (listen %s): a tcp endpoint cannot share its port", e.ep.URL, e.bind)
		}
		if e.kind != kindTCP {
			// Tunnels carry several ports' endpoints; a duplicate name there
			// resolves to the first one configured.
			_ = t.merged.add(e)
		}
	}
	return t, nil
}

// internalFor finds the internal endpoint of a forward-internal URL.
func (t *table) internalFor(raw string) *endpoint {
	p, err := parseEndpointURL(raw)
	if err != nil {
		return nil
	}
	return t.internal[p.host]
}

// HasInternal implements exchange.InternalEndpoints for forward-internal.
func (t *table) HasInternal(url string) bool { return t.internalFor(url) != nil }

var _ exchange.InternalEndpoints = (*table)(nil)

func (t *table) close() {
	for _, e := range t.endpoints {
		e.close()
	}
}
