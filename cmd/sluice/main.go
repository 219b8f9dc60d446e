// Command sluice is a self-hosted, programmable edge: a reverse proxy with
// ngrok-compatible Traffic Policy, hot-reloaded. See docs/cli.md.
//
// This file is wiring only; the commands live in internal/cli.
package main

import (
	"os"

	"github.com/sluicehq/sluice/internal/cli"
	_ "github.com/sluicehq/sluice/policy/actions" // built-in actions register themselves
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	cli.Version = version
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
