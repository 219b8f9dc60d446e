package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/reload"
	"github.com/sluicehq/sluice/internal/reload/reloadtest"
	"github.com/sluicehq/sluice/internal/testcert"
	"github.com/sluicehq/sluice/internal/testlog"
)

func newStore(t *testing.T) (*Store, *testlog.Buffer) {
	lb := &testlog.Buffer{}
	s := NewStore(slog.New(slog.NewTextHandler(lb, nil)))
	t.Cleanup(s.Close)
	return s, lb
}

// watchedStore is a Store loaded with pairs and following their files
// through a live Watcher.
func watchedStore(t *testing.T, pairs ...Pair) (*Store, *testlog.Buffer) {
	t.Helper()
	s, logs := newStore(t)
	if err := s.Load(pairs); err != nil {
		t.Fatal(err)
	}
	if err := s.Watch(watcher(t)); err != nil {
		t.Fatal(err)
	}
	return s, logs
}

type fixture struct {
	dir     string
	a, b, c Pair
	pool    *x509.CertPool
}

func setup(t *testing.T) *fixture {
	dir := t.TempDir()
	f := &fixture{dir: dir}
	f.a.Cert, f.a.Key = testcert.Generate(t, dir, "a.example.com", "www.a.example.com")
	f.b.Cert, f.b.Key = testcert.Generate(t, dir, "*.b.example.com", "b.example.com")
	f.c.Cert, f.c.Key = testcert.Generate(t, dir, "c.example.com", "A.example.com")
	f.pool = testcert.Pool(t, f.a.Cert, f.b.Cert, f.c.Cert)
	return f
}

func cn(c *tls.Certificate) string { return c.Leaf.Subject.CommonName }

func TestSelectBySNI(t *testing.T) {
	f := setup(t)
	s, _ := newStore(t)
	if _, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.example.com"}); err != ErrNoCertificate {
		t.Fatalf("empty store: %v", err)
	}
	if err := s.Load([]Pair{f.a, f.b, f.c}); err != nil {
		t.Fatal(err)
	}
	for sni, want := range map[string]string{
		"a.example.com":        "a.example.com", // a wins over c, which also claims it
		"WWW.A.Example.COM.":   "a.example.com",
		"b.example.com":        "*.b.example.com",
		"x.b.example.com":      "*.b.example.com",
		"deep.x.b.example.com": "a.example.com", // wildcards cover one label: default
		"c.example.com":        "c.example.com",
		"unknown.test":         "a.example.com",
		"":                     "a.example.com",
	} {
		c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: sni})
		if err != nil {
			t.Fatal(err)
		}
		if cn(c) != want {
			t.Errorf("SNI %q → %s, want %s", sni, cn(c), want)
		}
	}
	want := []string{"a.example.com", "www.a.example.com", "*.b.example.com", "b.example.com", "c.example.com"}
	if got := s.Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
}

// tlsServer serves TLS with the store on loopback and answers each
// connection with nothing but the handshake.
func tlsServer(t *testing.T, s *Store) string {
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: s.GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.(*tls.Conn).Handshake()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return l.Addr().String()
}

// served returns the CN of the certificate the server presents for sni.
func served(t *testing.T, addr, sni string, pool *x509.CertPool) (string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{ServerName: sni, RootCAs: pool})
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

func TestRealHandshakes(t *testing.T) {
	f := setup(t)
	s, _ := newStore(t)
	if err := s.Load([]Pair{f.a, f.b, f.c}); err != nil {
		t.Fatal(err)
	}
	addr := tlsServer(t, s)
	for sni, want := range map[string]string{
		"www.a.example.com": "a.example.com",
		"api.b.example.com": "*.b.example.com",
		"c.example.com":     "c.example.com",
	} {
		got, err := served(t, addr, sni, f.pool)
		if err != nil {
			t.Fatalf("%s: %v", sni, err)
		}
		if got != want {
			t.Errorf("%s: served %s, want %s", sni, got, want)
		}
	}
	// Unknown names get the default, which the client rightly rejects.
	if _, err := served(t, addr, "nope.test", f.pool); err == nil || !strings.Contains(err.Error(), "certificate is valid for") {
		t.Errorf("unknown SNI: %v", err)
	}
}

func TestLoadErrorsKeepOld(t *testing.T) {
	f := setup(t)
	s, _ := newStore(t)
	if err := s.Load([]Pair{f.a}); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(f.dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not pem at all"), 0o600)
	half := filepath.Join(f.dir, "half.crt")
	full, _ := os.ReadFile(f.b.Cert)
	os.WriteFile(half, full[:len(full)/2], 0o600)
	missing := filepath.Join(f.dir, "missing.crt")
	for _, tc := range []struct {
		pairs []Pair
		want  string
	}{
		{nil, "no certificate pairs"},
		{[]Pair{f.c, {Cert: missing, Key: f.b.Key}}, missing},
		{[]Pair{{Cert: f.b.Cert, Key: missing}}, missing},
		{[]Pair{{Cert: garbage, Key: f.b.Key}}, garbage + ": no PEM CERTIFICATE"},
		{[]Pair{{Cert: f.b.Cert, Key: garbage}}, garbage + ": no PEM PRIVATE KEY"},
		{[]Pair{{Cert: half, Key: f.b.Key}}, half + ": no PEM CERTIFICATE"},
		{[]Pair{{Cert: f.b.Cert, Key: f.c.Key}}, f.b.Cert + " with key " + f.c.Key + ": tls: private key does not match"},
	} {
		err := s.Load(tc.pairs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%v) = %v, want error containing %q", tc.pairs, err, tc.want)
		}
		if got := s.Names(); !slices.Equal(got, []string{"a.example.com", "www.a.example.com"}) {
			t.Fatalf("failed load changed names to %q", got)
		}
	}
}

func TestTruncatedSecondBlock(t *testing.T) {
	// A chain whose second certificate was cut off mid-write parses as
	// one good block plus junk: reject it instead of serving half a chain.
	a, _ := testcert.PEM(t, "x.test")
	b, _ := testcert.PEM(t, "y.test")
	chain := append(bytes.Clone(a), b[:len(b)/2]...)
	if err := checkPEM(chain, "CERTIFICATE"); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("checkPEM = %v", err)
	}
}

func watcher(t *testing.T) *reload.Watcher {
	return reloadtest.Start(t, nil, 10*time.Millisecond)
}

// eventually polls cond for up to 10s: reloads are asynchronous.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func hasName(s *Store, name string) func() bool {
	return func() bool { return slices.Contains(s.Names(), name) }
}

func TestReloadOnRewrite(t *testing.T) {
	f := setup(t)
	s, _ := watchedStore(t, f.a, f.b)
	addr := tlsServer(t, s)

	testcert.Write(t, f.b.Cert, f.b.Key, "new.example.com")
	eventually(t, "rewritten pair to load", hasName(s, "new.example.com"))
	got, err := served(t, addr, "new.example.com", testcert.Pool(t, f.b.Cert))
	if err != nil || got != "new.example.com" {
		t.Fatalf("after reload served %q, %v", got, err)
	}
	if slices.Contains(s.Names(), "b.example.com") {
		t.Fatal("old names still served")
	}
}

func TestReloadOnAtomicRename(t *testing.T) {
	f := setup(t)
	s, _ := watchedStore(t, f.a)
	certPEM, keyPEM := testcert.PEM(t, "renamed.example.com")
	for file, data := range map[string][]byte{f.a.Cert: certPEM, f.a.Key: keyPEM} {
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "renamed pair to load", hasName(s, "renamed.example.com"))
}

func TestBrokenFileKeepsOldThenFixed(t *testing.T) {
	f := setup(t)
	s, logs := watchedStore(t, f.a, f.b)
	addr := tlsServer(t, s)
	good, _ := os.ReadFile(f.b.Cert)

	// Half-written, in two steps: still one error in the log.
	os.WriteFile(f.b.Cert, good[:40], 0o600)
	eventually(t, "reload error", func() bool { return strings.Contains(logs.String(), "reload failed") })
	os.WriteFile(f.b.Cert, good[:41], 0o600)
	if got, err := served(t, addr, "x.b.example.com", f.pool); err != nil || got != "*.b.example.com" {
		t.Fatalf("broken file: served %q, %v (old certs must stay)", got, err)
	}
	if !strings.Contains(logs.String(), f.b.Cert) {
		t.Errorf("error does not name the file: %s", logs)
	}

	testcert.Write(t, f.b.Cert, f.b.Key, "fixed.example.com")
	eventually(t, "fixed pair to load", hasName(s, "fixed.example.com"))
	if n := strings.Count(logs.String(), "reload failed"); n != 1 {
		t.Errorf("%d reload errors logged, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "certificates reloaded") {
		t.Error("successful reload not logged")
	}
}

func TestWatchFollowsLoad(t *testing.T) {
	f := setup(t)
	s, _ := watchedStore(t, f.a)
	// A new configuration swaps pair a for pair c: c's files are watched.
	if err := s.Load([]Pair{f.c}); err != nil {
		t.Fatal(err)
	}
	testcert.Write(t, f.c.Cert, f.c.Key, "c2.example.com")
	eventually(t, "c's rewrite to load", hasName(s, "c2.example.com"))
}

func TestCloseStopsReloads(t *testing.T) {
	f := setup(t)
	s, _ := newStore(t)
	if err := s.Load([]Pair{f.a}); err != nil {
		t.Fatal(err)
	}
	w := watcher(t)
	if err := s.Watch(w); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
	if err := s.Load([]Pair{f.a}); err == nil {
		t.Fatal("Load after Close succeeded")
	}
	// Still serving the last certificates.
	if c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.example.com"}); err != nil || cn(c) != "a.example.com" {
		t.Fatalf("after Close: %v", err)
	}
}

// Two stores sharing a file (one wildcard certificate on two endpoints, or
// an endpoint and its replacement during a config reload): closing one
// must not stop the other's reloads.
func TestSharedFilesIndependentStores(t *testing.T) {
	f := setup(t)
	w := watcher(t)
	before, _ := newStore(t)
	after, _ := newStore(t)
	for _, s := range []*Store{before, after} {
		if err := s.Load([]Pair{f.a}); err != nil {
			t.Fatal(err)
		}
		if err := s.Watch(w); err != nil {
			t.Fatal(err)
		}
	}
	before.Close() // the old endpoint drained
	testcert.Write(t, f.a.Cert, f.a.Key, "shared2.example.com")
	eventually(t, "the surviving store to reload", hasName(after, "shared2.example.com"))
	if slices.Contains(before.Names(), "shared2.example.com") {
		t.Fatal("closed store reloaded")
	}
}

func TestValidityWarnings(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	var pairs []Pair
	for i, v := range [][2]time.Time{
		{now.Add(-48 * time.Hour), now.Add(-time.Hour)},      // expired
		{now.Add(time.Hour), now.Add(48 * time.Hour)},        // not yet valid
		{now.Add(-time.Hour), now.Add(72 * time.Hour)},       // expires soon
		{now.Add(-time.Hour), now.Add(365 * 24 * time.Hour)}, // fine
	} {
		c, k := testcert.PEMValid(t, v[0], v[1], "v"+string(rune('0'+i))+".test")
		p := Pair{Cert: filepath.Join(dir, "v"+string(rune('0'+i))+".crt"), Key: filepath.Join(dir, "v"+string(rune('0'+i))+".key")}
		os.WriteFile(p.Cert, c, 0o600)
		os.WriteFile(p.Key, k, 0o600)
		pairs = append(pairs, p)
	}
	s, logs := newStore(t)
	if err := s.Load(pairs); err != nil {
		t.Fatal(err) // still loaded: serving beats refusing
	}
	out := logs.String()
	for _, want := range []string{"certificate expired", "certificate not yet valid", "certificate expires soon"} {
		if strings.Count(out, want) != 1 {
			t.Errorf("log has %d %q lines:\n%s", strings.Count(out, want), want, out)
		}
	}
	if strings.Contains(out, "v3.crt") {
		t.Errorf("valid certificate warned about:\n%s", out)
	}
}
