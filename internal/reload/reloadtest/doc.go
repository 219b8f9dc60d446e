// Package reloadtest runs a reload.Watcher for the length of one test:
// started with a short debounce so that reload tests wait milliseconds,
// not the production 100ms per change, and stopped (Run returned) before
// the test's temporary files are removed, so no watcher goroutine outlives
// its test. It is imported only by tests.
package reloadtest
