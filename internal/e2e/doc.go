// Package e2e is the end-to-end test battery of Traffic Policy: every
// built-in action, every CEL variable, function and macro the engine
// declares, ngrok's documented example policies, variable and macro
// examples, and hot reload under load, each exercised through the real
// proxy listening on loopback ports chosen by the OS, with a real upstream
// that echoes what it received. Unit tests in policy and policy/actions run
// the engine in process; this package checks that the proxy, the engine,
// the actions and the reload machinery agree once wired together, over
// HTTP/1.1, HTTP/2 (TLS and h2c), WebSocket and gRPC, which is what a user
// of the binary sees. It holds tests only; testdata/ngrok/README.md
// describes the format of the documentation examples.
package e2e
