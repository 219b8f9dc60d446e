// Package quickstart is the example that `make run` starts: sluice.yaml (one
// HTTP endpoint on 127.0.0.1:8080), policy.yaml (add-headers, a deny on
// /admin, a per-client rate limit), the demo upstream in backend/ and
// run.sh, which starts the backend, runs sluice in the foreground and stops
// the backend when sluice exits. Its tests load the config and the policy
// with the real loaders so that the example cannot silently rot.
package quickstart
