// Command sluice is a self-hosted, programmable edge: a reverse proxy with
// ngrok-compatible Traffic Policy, hot-reloaded. See docs/cli.md.
//
// This file is wiring only; the commands live in internal/cli.
package main

import (
	"os"
	"runtime/debug"

	"github.com/sluicehq/sluice/internal/cli"
	_ "github.com/sluicehq/sluice/policy/actions" // built-in actions register themselves
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	// A proxy's live heap is small (pooled buffers, per-request state) and
	// its garbage is short-lived, so the default GOGC=100 collects far more
	// often than needed: 400 cut proxy CPU per request by about 10% in
	// profiles. GOGC in the environment still wins.
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(400)
	}
	cli.Version = version
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
