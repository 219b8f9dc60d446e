package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"
)

func clientCert(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("spiffe://example.org/client")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0xb530),
		Subject: pkix.Name{CommonName: "client.example.com", Country: []string{"US"}, Organization: []string{"Example"},
			OrganizationalUnit: []string{"Ops"}, Locality: []string{"Mountain View"}, Province: []string{"California"},
			PostalCode: []string{"94043"}, StreetAddress: []string{"1 Way"}},
		NotBefore:      time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:       time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		DNSNames:       []string{"client.example.com", "alt.example.com"},
		EmailAddresses: []string{"ops@example.com"},
		IPAddresses:    []net.IP{net.ParseIP("192.168.1.1")},
		URIs:           []*url.URL{u},
		KeyUsage:       x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestClientCertVariables(t *testing.T) {
	c, _ := fixture()
	cases := []string{
		"conn.tls.client.subject.common_name == 'client.example.com'",
		"conn.tls.client.subject == 'CN=client.example.com,OU=Ops,O=Example,POSTALCODE=94043,STREET=1 Way,L=Mountain View,ST=California,C=US'",
		"conn.tls.client.subject.country == ['US'] && conn.tls.client.subject.organization == ['Example']",
		"conn.tls.client.subject.organizational_unit == ['Ops'] && conn.tls.client.subject.locality == ['Mountain View']",
		"conn.tls.client.subject.province == ['California'] && conn.tls.client.subject.postal_code == ['94043']",
		"conn.tls.client.subject.street_address == ['1 Way']",
		// self-signed: the issuer is the subject
		"conn.tls.client.issuer == conn.tls.client.subject && conn.tls.client.issuer.common_name == 'client.example.com'",
		"conn.tls.client.issuer.country == ['US'] && conn.tls.client.issuer.organization == ['Example']",
		"conn.tls.client.issuer.locality == ['Mountain View'] && conn.tls.client.issuer.organizational_unit == ['Ops']",
		"conn.tls.client.issuer.postal_code == ['94043'] && conn.tls.client.issuer.province == ['California'] && conn.tls.client.issuer.street_address == ['1 Way']",
		"conn.tls.client.pem.startsWith('-----BEGIN CERTIFICATE-----')",
		"conn.tls.client.san == 'DNS:client.example.com, DNS:alt.example.com, email:ops@example.com, IP Address:192.168.1.1, URI:spiffe://example.org/client'",
		"conn.tls.client.san.dns_names == ['client.example.com', 'alt.example.com']",
		"conn.tls.client.san.email_addresses == ['ops@example.com']",
		"conn.tls.client.san.ip_addresses == ['192.168.1.1'] && conn.tls.client.san.uris == ['spiffe://example.org/client']",
		"conn.tls.client.serial_number == 'b530'",
		"conn.tls.client.signature_algorithm == 'ECDSA-SHA256'",
		"conn.tls.client.validity.not_before == timestamp('2026-01-01T00:00:00Z')",
		"conn.tls.client.validity.not_after > timestamp(time.now) || true",
		"conn.tls.client.extensions.exists(x, x.id == '2.5.29.15' && x.critical)",
	}
	withCert := *c.TLS
	withCert.PeerCertificates = []*x509.Certificate{clientCert(t)}
	c.TLS = &withCert
	for _, src := range cases {
		comp := newCompiler("tls.yaml", nil)
		comp.phases = 1 << OnTCPConnect
		e, err := comp.exprAt(src, nil, 0, true)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		s := &State{Conn: c}
		if ok, err := e.EvalBool(s); err != nil || !ok {
			t.Errorf("%s: %v %v", src, ok, err)
		}
		s.release()
	}
	// Without a client certificate everything is empty.
	c.TLS = nil
	comp := newCompiler("tls.yaml", nil)
	e, err := comp.exprAt("conn.tls.client.subject == '' && conn.tls.client.san.dns_names == [] && size(conn.tls.client.extensions) == 0 && conn.tls.version == ''", nil, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := e.EvalBool(&State{Conn: c}); err != nil || !ok {
		t.Fatalf("no cert: %v %v", ok, err)
	}
}
