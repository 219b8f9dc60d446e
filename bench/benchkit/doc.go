// Command benchkit holds the small chores of the benchmark and conformance
// scripts that a fresh Debian machine has no portable tool for: a
// self-signed certificate (openssl is not always installed), free loopback
// ports for configs that need fixed ones, waiting for a listener, and a
// static Go net/http server as a baseline.
//
//	benchkit cert DIR          write DIR/cert.pem and DIR/key.pem (127.0.0.1, ::1, localhost)
//	benchkit ports N           print N free TCP ports on 127.0.0.1, one a line
//	benchkit wait ADDR [SECS]  exit 0 once ADDR accepts TCP connections (default 10s)
//	benchkit serve ADDR TLSADDR CERT KEY
//	                           answer 1 KiB with Go's net/http itself (HTTP/1.1 on
//	                           ADDR, h2 over TLS on TLSADDR): the cost of Go's
//	                           HTTP servers before any proxying
package main
