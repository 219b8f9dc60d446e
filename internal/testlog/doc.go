// Package testlog gives tests a place to send log output that is written
// from several goroutines (a watcher, a health checker, the proxy's
// handlers) and read by the test: a mutex-guarded buffer, so that tests of
// logging behaviour stay clean under -race. It is imported only by tests.
package testlog
