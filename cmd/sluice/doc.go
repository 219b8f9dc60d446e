// Command sluice runs the sluice edge: `sluice serve -c sluice.yaml`, or
// `sluice http|tcp|tls <upstream>` to front one service, and `sluice policy
// validate` to check policy files. The commands, the config wiring, signal
// handling and reload live in internal/cli; this package is the binary and
// its end-to-end tests, which build it once and drive it through real
// loopback listeners.
package main
