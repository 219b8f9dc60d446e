// Package policy is sluice's Traffic Policy engine. It parses policy files in
// ngrok's published format (YAML or JSON: on_tcp_connect, on_http_request,
// on_http_response, each a list of rules with CEL expressions and actions),
// type-checks every CEL expression and ${} interpolation once at load with
// file:line:col errors, and runs the rules per connection, request and
// response through the exchange.Hooks interface, which is the only thing the
// proxy knows of it. Variables are computed lazily: an expression that never
// reads req.user_agent never pays for parsing it. Actions live in other
// packages and register themselves (see action.go); the engine never imports
// them. A Handle holds the live policy and swaps in new versions on reload
// while in-flight exchanges finish on the version they started with.
package policy
