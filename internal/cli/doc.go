// Package cli implements sluice's command line: flag parsing (flags are
// accepted before and after the positional argument), the serve/http/tcp/
// tls/policy/version commands, logging setup, and the runner that wires a
// config into the proxy, the policy engine and the admin listener. The
// runner owns the reload story: the config file is watched and re-applied
// on change or SIGHUP; a broken file logs one error and the running config
// stays; policy handles are reused while their file or text is unchanged;
// SIGTERM/SIGINT drain in-flight requests before exit.
package cli
