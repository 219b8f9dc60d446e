package proxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
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
	"github.com/sluicehq/sluice/proxy/upstream"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// start applies cfgs on a new Server and returns it; every endpoint listens
// on 127.0.0.1:0 unless it says otherwise.
func start(t testing.TB, opts Options, cfgs ...EndpointConfig) *Server {
	t.Helper()
	if opts.Log == nil {
		opts.Log = quiet
	}
	s := New(opts)
	for i := range cfgs {
		if cfgs[i].Listen == "" && !strings.Contains(cfgs[i].URL, ".internal") {
			cfgs[i].Listen = "127.0.0.1:0"
		}
	}
	if err := s.Apply(cfgs); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s
}

// addr returns the listener address for a listen key.
func addr(t testing.TB, s *Server, key string) string {
	t.Helper()
	a := s.Addrs()[key]
	if a == nil {
		t.Fatalf("no listener %q in %v", key, s.Addrs())
	}
	return a.String()
}

func backend(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	b := httptest.NewServer(h)
	t.Cleanup(b.Close)
	return b
}

func get(t testing.TB, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

// raw sends bytes on a fresh TCP connection and returns everything the
// server wrote until it closed the connection or went quiet for 2s.
func raw(t testing.TB, address, data string) string {
	t.Helper()
	c, err := net.Dial("tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(data))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, _ := io.ReadAll(bufio.NewReader(c))
	return string(b)
}

// hooks is a scriptable exchange.Hooks.
type hooks struct {
	connect  func(*exchange.Conn) error
	request  func(*exchange.Exchange) error
	response func(*exchange.Exchange) error
	done     atomic.Int32
}

func (h *hooks) OnConnect(c *exchange.Conn) error {
	if h.connect != nil {
		return h.connect(c)
	}
	return nil
}

func (h *hooks) OnRequest(x *exchange.Exchange) error {
	if h.request != nil {
		return h.request(x)
	}
	return nil
}

func (h *hooks) OnResponse(x *exchange.Exchange) error {
	if h.response != nil {
		return h.response(x)
	}
	return nil
}

func (h *hooks) Done(x *exchange.Exchange) { h.done.Add(1) }

// selfSigned writes a certificate for names (and 127.0.0.1) and its key to
// files and returns them with a pool that trusts it.
func selfSigned(t testing.TB, names ...string) (certs.Pair, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: names[0]},
		DNSNames:              names,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := certs.Pair{Cert: filepath.Join(dir, "c.pem"), Key: filepath.Join(dir, "k.pem")}
	os.WriteFile(p.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(p.Key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return p, pool
}

func tlsCert(t testing.TB, p certs.Pair) tls.Certificate {
	c, err := tls.LoadX509KeyPair(p.Cert, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func up(urls ...string) upstream.Config { return upstream.Config{URLs: urls} }

type certPair = certs.Pair

func h2Client(pool *x509.CertPool, name string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: name},
		ForceAttemptHTTP2: true,
	}}
}

// rawGetClose sends "GET / HTTP/1.1" with Connection: close to addr on a
// raw connection and returns everything that came back.
func rawGetClose(t *testing.T, addr string) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	raw, _ := io.ReadAll(c)
	return raw
}
