// Package reload is sluice's one hot-reload mechanism, shared by policies,
// plugins, GeoIP databases, certificates and the config file:
//
//	build -> validate -> swap (atomic) -> drain the old -> clean it up
//
// A Value[T] holds the live version. Readers Acquire it and Release it when
// they are done; Swap publishes a new version and runs the old one's cleanup
// only after its last reader released it (Traefik's Wasm middleware leaves
// that to finalizers and leaks; we do it explicitly).
//
// A Watcher turns file-system events into debounced "this file changed"
// callbacks. It watches parent directories, not files, so that editors'
// atomic rename-saves and Kubernetes ConfigMap symlink swaps are seen.
package reload
