package proxy

import (
	"strings"
	"testing"
)

// BenchmarkH1Engines is BenchmarkProxyGet1K for each HTTP/1.x engine in
// one run, so that the two compare on the same (shared) machine.
func BenchmarkH1Engines(b *testing.B) {
	for _, eng := range []string{EngineNetHTTP, EngineSluice} {
		b.Run(strings.ReplaceAll(eng, "/", ""), func(b *testing.B) {
			benchGet1K(b, Options{HTTP1Engine: eng})
		})
	}
}
