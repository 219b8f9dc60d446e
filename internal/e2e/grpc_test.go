package e2e

// gRPC through a policy: a gRPC call is an HTTP/2 POST, so headers a policy
// adds arrive as metadata, and a deny becomes a gRPC status the client
// understands (HTTP 403 maps to PermissionDenied).

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestGRPCThroughPolicy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seenMD := make(chan metadata.MD, 4)
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		seenMD <- md
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)

	e := start(t, ep{URL: "http://grpc.test", Upstream: "h2c://" + ln.Addr().String(), Policy: `
on_http_request:
  - expressions:
      - "'x-deny' in req.headers"
    actions:
      - type: deny
  - actions:
      - type: add-headers
        config:
          headers: {x-from-policy: "${req.url.path}"}
`})
	addr := e.addr("")
	conn, err := grpc.NewClient("passthrough:///grpc.test",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("grpc.test"),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	res, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check: %v, %v", res, err)
	}
	md := <-seenMD
	if got := md.Get("x-from-policy"); len(got) != 1 || got[0] != "/grpc.health.v1.Health/Check" {
		t.Errorf("upstream metadata x-from-policy = %q", got)
	}

	_, err = client.Check(metadata.AppendToOutgoingContext(ctx, "x-deny", "1"), &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("denied call: %v (code %s), want PermissionDenied", err, status.Code(err))
	}
	select {
	case md := <-seenMD:
		t.Errorf("denied call reached the upstream (metadata %v)", md)
	default:
	}
}
