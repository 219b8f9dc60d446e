package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/exchange"

	"github.com/sluicehq/sluice/proxy/certs"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

func protoEcho(t *testing.T) string {
	return backend(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Proto, r.Host)
	}).URL
}

func TestClientProtocols(t *testing.T) {
	pair, pool := selfSigned(t, "app.test")
	s := start(t, Options{},
		EndpointConfig{URL: "https://app.test:443", TLS: []certs.Pair{pair}, Upstream: up(protoEcho(t))},
		EndpointConfig{URL: "http://:80", Listen: "127.0.0.2:0", Upstream: up(protoEcho(t))},
	)
	tlsAddr, plain := addr(t, s, "127.0.0.1:0"), addr(t, s, "127.0.0.2:0")

	// HTTP/2 over TLS through ALPN, and HTTP/1.1 over TLS.
	for _, h2 := range []bool{true, false} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "app.test"}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		c := &http.Client{Transport: tr}
		res, err := c.Get("https://" + tlsAddr + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		want := "HTTP/1.1 " + tlsAddr
		if h2 && res.Proto != "HTTP/2.0" || !h2 && res.Proto != "HTTP/1.1" || string(b) != want {
			t.Errorf("h2=%v: proto %s body %q", h2, res.Proto, b)
		}
		if res.Header.Get("X-Request-Id") == "" {
			t.Errorf("no request id")
		}
		tr.CloseIdleConnections()
	}

	// h2c with prior knowledge.
	h2c := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) {
		return net.Dial(n, a)
	}}
	res, err := (&http.Client{Transport: h2c}).Get("http://" + plain + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	h2c.CloseIdleConnections()
	if res.Proto != "HTTP/2.0" || !strings.HasPrefix(string(b), "HTTP/1.1") {
		t.Errorf("h2c prior knowledge: %s %q", res.Proto, b)
	}

	// h2c by Upgrade: the 101 then an h2 frame stream on the same socket.
	c, err := net.Dial("tcp", plain)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	line, _ := br.ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 101") {
		t.Fatalf("h2c upgrade: %q", line)
	}
}

func TestSNIRoutingAndPassthrough(t *testing.T) {
	pa, poolA := selfSigned(t, "a.test")
	// A TLS backend for the passthrough endpoint: the client talks TLS to
	// it end to end through sluice.
	pb, poolB := selfSigned(t, "pass.test")
	tb := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "passthrough backend")
	}))
	tb.TLS = &tls.Config{Certificates: []tls.Certificate{tlsCert(t, pb)}}
	tb.StartTLS()
	t.Cleanup(tb.Close)
	plainHooks := &hooks{}
	s := start(t, Options{},
		EndpointConfig{URL: "https://a.test:443", TLS: []certs.Pair{pa}, Upstream: up(named(t, "terminated"))},
		EndpointConfig{URL: "tls://pass.test:443", Upstream: up("tcp://" + tb.Listener.Addr().String())},
		EndpointConfig{URL: "http://:443", Upstream: up(named(t, "plaintext")), Hooks: plainHooks},
	)
	a := addr(t, s, "127.0.0.1:0")
	for _, tc := range []struct {
		name string
		pool *x509.CertPool
		want string
	}{{"a.test", poolA, "terminated"}, {"pass.test", poolB, "passthrough backend"}} {
		if b := getSNI(t, a, tc.name, tc.pool); b != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, b, tc.want)
		}
	}
	// Plaintext on the same port goes to the http endpoint.
	if _, body := get(t, "http://"+a+"/"); body != "plaintext" {
		t.Errorf("plaintext on mixed port: %q", body)
	}
	// An unknown SNI is closed without a handshake.
	_, err := tls.Dial("tcp", a, &tls.Config{ServerName: "nope.test", InsecureSkipVerify: true})
	if err == nil {
		t.Errorf("unknown SNI was served")
	}
}

func TestTCPEndpoint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c) // until the client half-closes
				c.Write([]byte("echo:" + string(b)))
			}()
		}
	}()
	var deny atomic.Bool
	h := &hooks{connect: func(c *exchange.Conn) error {
		if deny.Load() {
			return exchange.ErrCloseConnection
		}
		return nil
	}}
	s := start(t, Options{}, EndpointConfig{URL: "tcp://:5000", Upstream: up("tcp://" + ln.Addr().String()), Hooks: h})
	c, err := net.Dial("tcp", addr(t, s, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ping"))
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	if string(b) != "echo:ping" {
		t.Fatalf("got %q", b)
	}
	// OnConnect runs for tcp endpoints too and can refuse the connection.
	deny.Store(true)
	c2, err := net.Dial("tcp", addr(t, s, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(c2); len(b) != 0 || err != nil {
		t.Fatalf("denied connection: %q %v", b, err)
	}
}

func TestUpstreamSchemes(t *testing.T) {
	// https upstream: verified against system roots by default (fails for
	// a self-signed test server), accepted with InsecureSkipVerify.
	hb := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "tls upstream")
	}))
	hb.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	hb.StartTLS()
	t.Cleanup(hb.Close)
	// h2c upstream.
	h2s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "h2c upstream "+r.Proto)
	}))
	h2s.Config.Protocols = new(http.Protocols)
	h2s.Config.Protocols.SetUnencryptedHTTP2(true)
	h2s.Start()
	t.Cleanup(h2s.Close)
	// unix socket upstream.
	sock := filepath.Join(t.TempDir(), "up.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	us := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "unix upstream")
	})}
	go us.Serve(ul)
	t.Cleanup(func() { us.Close() })

	s := start(t, Options{},
		EndpointConfig{URL: "http://verify.test:80", Upstream: up(hb.URL)},
		EndpointConfig{URL: "http://skip.test:80", Upstream: up(hb.URL), InsecureSkipVerify: true},
		EndpointConfig{URL: "http://h2c.test:80", Upstream: up("h2c://" + h2s.Listener.Addr().String())},
		EndpointConfig{URL: "http://unix.test:80", Upstream: up("unix:" + sock)},
	)
	a := addr(t, s, "127.0.0.1:0")
	for host, want := range map[string]string{
		"skip.test": "tls upstream",
		"h2c.test":  "h2c upstream HTTP/2.0",
		"unix.test": "unix upstream",
	} {
		for i := 0; i < 2; i++ { // the second request reuses the pooled connection
			res, body := get(t, "http://"+a+"/", "Host", host)
			if res.StatusCode != 200 || body != want {
				t.Errorf("%s: %d %q", host, res.StatusCode, body)
			}
		}
	}
	res, body := get(t, "http://"+a+"/", "Host", "verify.test")
	if res.StatusCode != 502 || !strings.Contains(body, "upstream connect failed") {
		t.Errorf("unverified upstream: %d %q", res.StatusCode, body)
	}
}

// grpc test service: unary via health Check, bidi streaming via
// FullDuplexCall echoing each message size.
type duplex struct {
	testpb.UnimplementedTestServiceServer
}

func (duplex) FullDuplexCall(st testpb.TestService_FullDuplexCallServer) error {
	for {
		m, err := st.Recv()
		if err == io.EOF {
			return status.Error(codes.DataLoss, "stream trailer ok")
		}
		if err != nil {
			return err
		}
		for _, p := range m.GetResponseParameters() {
			if err := st.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
				return err
			}
		}
	}
}

func TestGRPC(t *testing.T) {
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	testpb.RegisterTestServiceServer(gs, duplex{})
	go gs.Serve(gl)
	t.Cleanup(gs.Stop)

	pair, pool := selfSigned(t, "grpc.test")
	s := start(t, Options{},
		// gRPC to a plain http:// upstream is spoken in h2c.
		EndpointConfig{URL: "http://:80", Upstream: up("http://" + gl.Addr().String())},
		EndpointConfig{URL: "https://grpc.test:443", Listen: "127.0.0.2:0", TLS: []certs.Pair{pair}, Upstream: up("h2c://" + gl.Addr().String())},
	)
	conns := map[string]*grpc.ClientConn{}
	c1, err := grpc.NewClient(addr(t, s, "127.0.0.1:0"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	conns["h2c"] = c1
	c2, err := grpc.NewClient(addr(t, s, "127.0.0.2:0"), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "grpc.test"})))
	if err != nil {
		t.Fatal(err)
	}
	conns["tls"] = c2
	for name, cc := range conns {
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hc := healthpb.NewHealthClient(cc)
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("%s unary: %v %v", name, r, err)
		}
		// An error status travels in the trailers.
		_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("%s unary error: %v", name, err)
		}
		st, err := testpb.NewTestServiceClient(cc).FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 3; i++ {
			if err := st.Send(&testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: int32(i * 100)}}}); err != nil {
				t.Fatal(err)
			}
			m, err := st.Recv()
			if err != nil || len(m.GetPayload().GetBody()) != i*100 {
				t.Fatalf("%s stream %d: %v", name, i, err)
			}
		}
		st.CloseSend()
		if _, err := st.Recv(); status.Code(err) != codes.DataLoss || !strings.Contains(err.Error(), "stream trailer ok") {
			t.Fatalf("%s stream end: %v", name, err)
		}
	}
}

var _ = os.Remove

// TestH2CUpgradeRequest completes an h2c Upgrade: the upgraded request is
// answered on stream 1 of the new HTTP/2 connection. The Upgrade was for
// sluice (hop-by-hop): the upstream sees a plain request, proxied from h2.
func TestH2CUpgradeRequest(t *testing.T) {
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s upgrade=%q settings=%q via=%q", r.Proto, r.Host,
			r.Header.Get("Upgrade"), r.Header.Get("Http2-Settings"), r.Header.Get("Via"))
	})
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up(be.URL)})
	c, err := net.Dial("tcp", addr(t, s, "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: up.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n")
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, br)
	fr.WriteSettings()
	dec := hpack.NewDecoder(4096, nil)
	var status, body string
	for body == "" {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("frames: %v", err)
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			hf, _ := dec.DecodeFull(f.HeaderBlockFragment())
			for _, h := range hf {
				if h.Name == ":status" {
					status = h.Value
				}
			}
		case *http2.DataFrame:
			body = string(f.Data())
		}
	}
	if want := `HTTP/1.1 up.test upgrade="" settings="" via="2.0 sluice"`; status != "200" || body != want {
		t.Fatalf("status %q body %q, want 200 %q", status, body, want)
	}
}

// On a port with both passthrough and terminating endpoints the most
// specific name wins whichever kind it is: a catch-all or wildcard
// passthrough does not swallow an exact https endpoint, nor the reverse;
// the same name in both is refused.
func TestSNIMostSpecificAcrossKinds(t *testing.T) {
	pa, poolA := selfSigned(t, "app.test")
	pb, poolB := selfSigned(t, "other.test", "x.wild.test")
	tb := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "passthrough backend")
	}))
	tb.TLS = &tls.Config{Certificates: []tls.Certificate{tlsCert(t, pb)}}
	tb.StartTLS()
	t.Cleanup(tb.Close)
	pw, poolW := selfSigned(t, "*.wild.test", "app.wild.test")
	s := start(t, Options{},
		EndpointConfig{URL: "tls://:443", Upstream: up("tcp://" + tb.Listener.Addr().String())},
		EndpointConfig{URL: "https://app.test:443", TLS: []certs.Pair{pa}, Upstream: up(named(t, "terminated app"))},
		EndpointConfig{URL: "tls://x.wild.test:443", Upstream: up("tcp://" + tb.Listener.Addr().String())},
		EndpointConfig{URL: "https://*.wild.test:443", TLS: []certs.Pair{pw}, Upstream: up(named(t, "terminated wild"))},
	)
	a := addr(t, s, "127.0.0.1:0")
	for _, tc := range []struct {
		name string
		pool *x509.CertPool
		want string
	}{
		{"app.test", poolA, "terminated app"},         // exact https over catch-all passthrough
		{"other.test", poolB, "passthrough backend"},  // only the catch-all matches
		{"app.wild.test", poolW, "terminated wild"},   // https wildcard over catch-all passthrough
		{"x.wild.test", poolB, "passthrough backend"}, // exact passthrough over https wildcard
	} {
		if b := getSNI(t, a, tc.name, tc.pool); b != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, b, tc.want)
		}
	}

	for _, pair := range [][2]string{{"tls://dup.test:443", "https://dup.test:443"}, {"https://:443", "tls://:443"}} {
		s2 := New(Options{Log: quiet})
		var cfgs []EndpointConfig
		for _, u := range pair {
			c := EndpointConfig{URL: u, Listen: "127.0.0.1:0", Upstream: up("tcp://" + tb.Listener.Addr().String())}
			if strings.HasPrefix(u, "https") {
				c.TLS, c.Upstream = []certs.Pair{pa}, up(named(t, "x"))
			}
			cfgs = append(cfgs, c)
		}
		if err := s2.Apply(cfgs); err == nil || !strings.Contains(err.Error(), "duplicate host") {
			t.Errorf("%v on one port: %v, want a duplicate host error", pair, err)
		}
		s2.Shutdown(context.Background())
	}
}

// getSNI GETs / from addr over TLS with server name name, trusting pool,
// and returns the body.
func getSNI(t *testing.T, addr, name string, pool *x509.CertPool) string {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: name}}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/")
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// An h2c upstream gets the request as the client sent it: no User-Agent
// or Accept-Encoding of x/net's transport, and a gzip answer goes back to
// the client as gzip, with its Content-Encoding.
func TestH2CUpstreamGetsClientHeadersOnly(t *testing.T) {
	h2s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		fmt.Fprintf(w, "ua=%q ae=%q", r.Header.Get("User-Agent"), r.Header.Get("Accept-Encoding"))
	}))
	h2s.Config.Protocols = new(http.Protocols)
	h2s.Config.Protocols.SetUnencryptedHTTP2(true)
	h2s.Start()
	t.Cleanup(h2s.Close)
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up("h2c://" + h2s.Listener.Addr().String())})
	res, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(rawGetClose(t, addr(t, s, "127.0.0.1:0")))), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if string(body) != `ua="" ae=""` || res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("got %q, Content-Encoding %q; want the upstream to see no User-Agent or Accept-Encoding and its encoding kept", body, res.Header.Get("Content-Encoding"))
	}
}

// A gRPC call that sluice cannot forward gets a gRPC status (UNAVAILABLE
// for a down upstream) that a gRPC client can read, not an HTTP error page.
func TestGRPCErrorsAreGRPC(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := dead.Addr().String()
	dead.Close() // nothing listens there any more
	s := start(t, Options{}, EndpointConfig{URL: "http://:80", Upstream: up("h2c://" + downAddr)})
	cc, err := grpc.NewClient(addr(t, s, "127.0.0.1:0"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "upstream connect failed") {
		t.Fatalf("got %v, want Unavailable naming the failed connect", err)
	}
	// On the wire: a trailers-only answer, not an HTTP 502 (which gRPC
	// clients can only map by its HTTP status, without sluice's message).
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) {
		return net.Dial(n, a)
	}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("POST", "http://"+addr(t, s, "127.0.0.1:0")+"/grpc.health.v1.Health/Check", strings.NewReader("\x00\x00\x00\x00\x00"))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Grpc-Status") != "14" || !strings.Contains(res.Header.Get("Grpc-Message"), "upstream") {
		t.Fatalf("got %d %v, want 200 with grpc-status 14", res.StatusCode, res.Header)
	}
}
