package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// `sluice http h2c://...` carries gRPC (HTTP/2 cleartext both sides).
func TestGRPCThroughHTTPCommand(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("sluice.test", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()

	p := start(t, "http", "h2c://"+ln.Addr().String(), "--listen", "127.0.0.1:0", "--log-format", "json")
	conn, err := grpc.NewClient(p.addr("127.0.0.1:0"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "sluice.test"})
	if err != nil || res.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health check through sluice: %v %v", res, err)
	}
}

// WebSocket upgrades pass through `sluice http`.
func TestWebSocketThroughHTTPCommand(t *testing.T) {
	t.Parallel()
	up := websocket.Upgrader{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			if c.WriteMessage(mt, append([]byte("echo:"), m...)) != nil {
				return
			}
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	p := start(t, "http", ln.Addr().String(), "--listen", "127.0.0.1:0", "--log-format", "json")
	d := websocket.Dialer{HandshakeTimeout: waitTimeout}
	c, _, err := d.Dial("ws://"+p.addr("127.0.0.1:0")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(waitTimeout))
	if err := c.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	_, m, err := c.ReadMessage()
	if err != nil || string(m) != "echo:hi" {
		t.Fatalf("websocket echo: %q %v", m, err)
	}
}

// `sluice tls` passes TLS through untouched, routed by SNI.
func TestTLSPassthroughCommand(t *testing.T) {
	t.Parallel()
	backend := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "passthrough "+r.TLS.ServerName)
	}))
	defer backend.Close()
	p := start(t, "tls", backend.Listener.Addr().String(), "--listen", "127.0.0.1:0", "--url", "tls://app.test", "--log-format", "json")
	addr := p.addr("127.0.0.1:0")
	do := func(sni string) (string, error) {
		c := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{ServerName: sni, InsecureSkipVerify: true}, // the backend's own test cert
			DisableKeepAlives: true,
		}}
		res, err := c.Get("https://" + addr + "/")
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return string(b), err
	}
	if body, err := do("app.test"); err != nil || body != "passthrough app.test" {
		t.Errorf("SNI app.test: %q %v", body, err)
	}
	if body, err := do("other.test"); err == nil {
		t.Errorf("SNI other.test was served: %q", body)
	}
}

// `sluice http unix:/path` fronts a service on a unix socket.
func TestUnixSocketUpstream(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "app.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("unix sockets: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "unix "+r.URL.Path)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	p := start(t, "http", "unix:"+sock, "--listen", "127.0.0.1:0", "--log-format", "json")
	if code, body, _ := get(t, p.addr("127.0.0.1:0"), "", "/sock"); code != 200 || body != "unix /sock" {
		t.Errorf("GET via unix socket = %d %q", code, body)
	}
}

// `sluice tcp unix:/path` pipes bytes to a unix socket.
func TestTCPToUnixSocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "echo.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("unix sockets: %v", err)
	}
	serveOn(t, ln, func(c net.Conn) { _, _ = io.Copy(c, c) })
	p := start(t, "tcp", "unix:"+sock, "--listen", "127.0.0.1:0", "--log-format", "json")
	c, err := net.Dial("tcp", p.addr("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := c.Write([]byte("unix\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "unix\n" {
		t.Fatalf("echo via unix socket: %q %v", buf, err)
	}
}
