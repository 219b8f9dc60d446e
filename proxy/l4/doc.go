// Package l4 holds sluice's layer-4 building blocks, shared by the tcp and
// tls endpoints and by tunnels: Pipe copies bytes both ways between two
// connections with half-close, an idle timeout and cancellation, and
// PeekClientHello reads a TLS ClientHello (SNI, ALPN) without consuming it,
// so that a TLS passthrough endpoint can route on the server name and then
// hand the untouched byte stream to the chosen upstream.
package l4
