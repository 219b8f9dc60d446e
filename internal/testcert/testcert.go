package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Generate writes a new certificate for names (DNS names such as
// "example.com" or "*.example.com", or IP addresses) and its key as PEM
// files under dir, and returns their paths. Each call creates new files.
// names[0] becomes the subject CN; no names means "localhost".
func Generate(t testing.TB, dir string, names ...string) (certFile, keyFile string) {
	t.Helper()
	base := "cert"
	if len(names) > 0 {
		base = strings.NewReplacer("*", "star", "/", "_", ":", "_").Replace(names[0])
	}
	f, err := os.CreateTemp(dir, base+"-*.crt")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	certFile = f.Name()
	keyFile = strings.TrimSuffix(certFile, ".crt") + ".key"
	Write(t, certFile, keyFile, names...)
	return certFile, keyFile
}

// Write generates a certificate for names and writes it to certFile and
// keyFile in place (overwriting them), for tests of reloading.
func Write(t testing.TB, certFile, keyFile string, names ...string) {
	t.Helper()
	certPEM, keyPEM := PEM(t, names...)
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

// PEM generates a certificate for names, valid from an hour ago for a
// year, and returns it and its key in PEM.
func PEM(t testing.TB, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	return PEMValid(t, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour), names...)
}

// PEMValid is PEM with a chosen validity period, for tests of expired or
// not-yet-valid certificates.
func PEMValid(t testing.TB, notBefore, notAfter time.Time, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	if len(names) == 0 {
		names = []string{"localhost"}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0], Organization: []string{"sluice test"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// Pool returns a CertPool trusting the certificates in certFiles (as made
// by Generate), for test clients.
func Pool(t testing.TB, certFiles ...string) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	for _, f := range certFiles {
		b, err := os.ReadFile(filepath.Clean(f))
		if err != nil {
			t.Fatal(err)
		}
		if !pool.AppendCertsFromPEM(b) {
			t.Fatalf("testcert: no certificate in %s", f)
		}
	}
	return pool
}
