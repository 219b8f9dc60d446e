// Package upstream owns the services sluice forwards to: a Pool of Targets
// parsed from the user's upstream URLs, the balancing choice among them
// (round robin, least requests, power of two choices), passive ejection of
// targets whose connections fail, and active health checks (HTTP GET over
// the target's own transport, or a TCP connect).
//
// The proxy calls Pick for every attempt, then Begin and End around the
// exchange with the chosen Target. Pick, Begin and End are on the request
// hot path and use atomics only. Health transitions are reported through
// OnHealthChange and logged with slog; the health-check goroutine is owned
// by the Pool (Start … Close).
package upstream
