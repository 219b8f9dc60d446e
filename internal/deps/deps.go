//go:build tools

// Package deps pins the modules the packages under construction import, so
// that go.mod/go.sum stay complete while they are written in parallel.
// Remove once every module here is imported by real code.
package deps

import (
	_ "cel.dev/cel-go/cel"
	_ "github.com/andybalholm/brotli"
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/gorilla/websocket"
	_ "github.com/hashicorp/yamux"
	_ "github.com/klauspost/compress/gzip"
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/collectors"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "go.yaml.in/yaml/v3"
	_ "golang.org/x/crypto/cryptobyte"
	_ "golang.org/x/net/http2"
	_ "golang.org/x/net/http2/h2c"
	_ "google.golang.org/grpc"
	_ "google.golang.org/grpc/health/grpc_health_v1"
	_ "google.golang.org/grpc/interop/grpc_testing"
)
