// Command backend is the demo upstream of the quickstart: a tiny HTTP
// service that answers every request with a JSON description of what it
// received. Seeing the request as the upstream got it makes the effect of a
// traffic policy (added headers, rewritten paths) visible with one curl.
//
//	go run ./examples/quickstart/backend -listen 127.0.0.1:9001
package main
