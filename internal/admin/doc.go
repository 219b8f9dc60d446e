// Package admin is sluice's admin listener: /healthz answers 200 while the
// process runs; /readyz answers 200 once the configured listeners are up and
// 503 while sluice is starting or draining (so a load balancer stops sending
// before connections close); /metrics serves Prometheus metrics from the
// dedicated registry every sluice package registers into; /debug/pprof/
// serves Go profiles. It is kept apart from the proxy's listeners so that
// probes and scrapes never go through traffic policies.
package admin
