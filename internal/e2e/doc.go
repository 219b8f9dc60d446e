// Package e2e is the end-to-end test battery of Traffic Policy: every
// built-in action, every CEL variable and macro, ngrok's documented example
// policies and hot reload under load, each exercised through the real proxy
// listening on loopback ports chosen by the OS, with a real upstream that
// echoes what it received. Unit tests in policy and policy/actions run the
// engine in process; this package checks that the proxy, the engine, the
// actions and the reload machinery agree once wired together, which is
// what a user of the binary sees. It holds tests only.
package e2e
