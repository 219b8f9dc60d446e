// Package actions holds sluice's built-in Traffic Policy actions: the
// ngrok-compatible add-headers, remove-headers, url-rewrite, redirect,
// custom-response, deny, close-connection, restrict-ips, rate-limit, log,
// set-vars, forward-internal and compress-response. Each action lives in its
// own file as a config struct (whose doc comment is the user documentation),
// a constructor that validates and compiles that config once at load, and a
// Run method that only does per-request work. Actions register themselves
// with the policy registry in init(); importing this package for its side
// effects is what makes them available to policy files. Actions see the
// request only through exchange.Request/Response, never *http.Request, so
// the same code serves HTTP/1.1, h2 and tunnelled traffic.
package actions
