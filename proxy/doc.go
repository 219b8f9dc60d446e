// Package proxy is sluice's HTTP and TCP proxy core: it owns the listeners,
// picks the endpoint for each connection (by SNI) and request (by Host),
// runs the endpoint's exchange.Hooks at the three policy points and forwards
// to the upstream pool, streaming both ways. It never imports the policy
// engine: all it knows of policies is exchange.Hooks.
//
// HTTP/1.x clients (plaintext and TLS-terminated) are served by sluice's
// own engine (h1server.go): one goroutine per connection and no background
// reader, pooled buffers, a strict RFC 9112 head parser (bare LF, obs-fold,
// CL+TE, unknown Transfer-Encoding, bad Host and oversized heads are refused
// before any handler runs, fields named with "_" are dropped;
// FuzzH1Request compares it with net/http's), and
// a response writer that writes the head straight from the handler's
// header map. It hands the h2c preface to net/http's server and hijacks for
// upgrades. Options.HTTP1Engine = "net/http" switches back to net/http's
// server for HTTP/1.x. HTTP/2 over TLS through ALPN and h2c (by prior
// knowledge or by "Upgrade: h2c") are served by net/http and
// golang.org/x/net/http2. Upstreams are reached
// through an own pooled HTTP/1.1 client (LIFO idle stacks, no goroutine per
// upstream connection, no header clones, pooled buffers, an own strict
// response-head parser) for http://, https:// and unix: targets, and through
// golang.org/x/net/http2 for h2c:// targets and for gRPC requests
// (Content-Type application/grpc), which need HTTP/2 end to end: to http://
// and unix: targets those are spoken in h2c (prior knowledge), to https://
// ones in h2 negotiated by ALPN. tcp:// endpoints and tls:// endpoints (SNI
// passthrough) pipe bytes, half-close aware.
//
// Choices worth knowing:
//
//   - OnConnect runs for every accepted connection: for TLS with the
//     endpoint the SNI chose, before the handshake (so Conn.TLS is still
//     nil there; requests see it); for plaintext with the port's catch-all
//     endpoint, else its first configured one, since no Host is known yet.
//   - X-Forwarded-For and Forwarded chains are extended only when the peer
//     is a trusted proxy (Options.TrustedProxies), which is also when the
//     client IP is taken from them; otherwise a new chain starts with the
//     peer. X-Request-Id is always generated, replaces any incoming one,
//     goes upstream and back to the client, and appears in error bodies and
//     log lines.
//   - A request with both Content-Length and Transfer-Encoding, or with
//     obs-fold, is refused with 400 and a closed connection: by the engine's
//     parser, or by the h1 guard under net/http (which would otherwise let
//     chunked win and join folded lines). An upstream response with both is read as chunked and
//     its connection is not reused.
//   - A failed connect is retried on another target while none of the
//     request body was consumed; a pooled connection the upstream closed
//     while idle is replaced transparently.
//   - Every error becomes a response in one place (errorResponse): short
//     plain text naming what happened and the request id.
//
// The routing table is built and validated completely by Apply, then swapped
// atomically (internal/reload); requests in flight finish on the table they
// started with, and the old table's pools and certificate stores are closed
// once it drained.
package proxy
