// Package bench holds sluice's benchmark and conformance tooling: bench.sh
// (sluice vs nginx vs Caddy behind one fixed nginx backend, written to
// docs/benchmarks.md by report.sh), h2spec.sh (HTTP/2 conformance, see
// docs/conformance.md), the proxies' configs and policy5.yaml, and the
// benchkit helper. Its tests keep those configs loadable by the current
// config schema and actions.
package bench
