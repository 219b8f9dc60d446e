// Package quickstart_test keeps the quickstart example loadable: README
// sends every new user to `make run`, so a config key or policy action
// renamed elsewhere must fail a test here, not the user's first try.
package quickstart_test

import (
	"testing"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/policy"
	_ "github.com/sluicehq/sluice/policy/actions" // the actions the policy uses
)

func TestQuickstartConfigLoads(t *testing.T) {
	c, err := config.Load("sluice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Endpoints) != 1 {
		t.Fatalf("endpoints = %d, want 1", len(c.Endpoints))
	}
	ep := c.Endpoints[0]
	if ep.Listen != "127.0.0.1:8080" {
		t.Errorf("listen = %q: README and run.sh promise 127.0.0.1:8080", ep.Listen)
	}
	if len(ep.Upstream) != 1 || ep.Upstream[0] != "http://127.0.0.1:9001" {
		t.Errorf("upstream = %q: run.sh starts the backend on 127.0.0.1:9001", ep.Upstream)
	}
	if ep.TrafficPolicyFile == "" {
		t.Error("no traffic_policy_file")
	}
}

func TestQuickstartPolicyLoads(t *testing.T) {
	if errs := policy.ValidateFiles("policy.yaml"); len(errs) > 0 {
		t.Fatal(errs)
	}
}
