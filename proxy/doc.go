// Package proxy is sluice's HTTP and TCP proxy core: it owns the listeners,
// picks the endpoint for each connection (by SNI) and request (by Host),
// runs the endpoint's exchange.Hooks at the three policy points and forwards
// to the upstream pool, streaming both ways.
//
// Clients are served by net/http (HTTP/1.1, HTTP/2 over TLS through ALPN,
// h2c by prior knowledge and by Upgrade). Upstreams are reached through an
// own pooled HTTP/1.1 client (no goroutines per upstream connection, no
// header clones, pooled buffers), or through golang.org/x/net/http2 for h2c
// upstreams and gRPC requests. tcp:// endpoints and tls:// (SNI passthrough)
// endpoints pipe bytes.
//
// The routing table is built and validated completely by Apply, then swapped
// atomically; requests in flight finish on the table they started with and
// the old table's upstream pools are closed once it drained. The proxy never
// imports the policy engine: all it knows of policies is exchange.Hooks.
package proxy
