package policy

// conn.tls.client.*: the client certificate of a mutual-TLS connection.
// Without one every field is empty (strings ""), lists [], times zero.

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

func (e *evaluation) clientCert() *x509.Certificate {
	if t := e.conn().TLS; t != nil && len(t.PeerCertificates) > 0 {
		return t.PeerCertificates[0]
	}
	return nil
}

func certVar(name string, typ *cel.Type, doc string, get func(c *x509.Certificate) ref.Val, empty ref.Val) variable {
	return variable{name, typ, inAll, doc, func(e *evaluation) ref.Val {
		c := e.clientCert()
		if c == nil {
			return empty
		}
		return get(c)
	}}
}

func strList(l []string) ref.Val {
	if len(l) == 0 {
		return emptyStrs
	}
	return types.NewStringList(adapter, l)
}

func tlsClientVariables() []variable {
	none := str("")
	var out []variable
	names := func(prefix, what string, name func(c *x509.Certificate) pkix.Name) {
		out = append(out,
			certVar(prefix, tStr, what+" distinguished name (RFC 2253 style)", func(c *x509.Certificate) ref.Val { return str(name(c).String()) }, none),
			certVar(prefix+".common_name", tStr, what+" common name", func(c *x509.Certificate) ref.Val { return str(name(c).CommonName) }, none),
			certVar(prefix+".country", tStrList, what+" countries", func(c *x509.Certificate) ref.Val { return strList(name(c).Country) }, emptyStrs),
			certVar(prefix+".locality", tStrList, what+" localities", func(c *x509.Certificate) ref.Val { return strList(name(c).Locality) }, emptyStrs),
			certVar(prefix+".organization", tStrList, what+" organizations", func(c *x509.Certificate) ref.Val { return strList(name(c).Organization) }, emptyStrs),
			certVar(prefix+".organizational_unit", tStrList, what+" organizational units", func(c *x509.Certificate) ref.Val { return strList(name(c).OrganizationalUnit) }, emptyStrs),
			certVar(prefix+".postal_code", tStrList, what+" postal codes", func(c *x509.Certificate) ref.Val { return strList(name(c).PostalCode) }, emptyStrs),
			certVar(prefix+".province", tStrList, what+" provinces", func(c *x509.Certificate) ref.Val { return strList(name(c).Province) }, emptyStrs),
			certVar(prefix+".street_address", tStrList, what+" street addresses", func(c *x509.Certificate) ref.Val { return strList(name(c).StreetAddress) }, emptyStrs),
		)
	}
	names("conn.tls.client.issuer", "issuer", func(c *x509.Certificate) pkix.Name { return c.Issuer })
	names("conn.tls.client.subject", "subject", func(c *x509.Certificate) pkix.Name { return c.Subject })
	zeroTime := types.Timestamp{Time: time.Time{}}
	out = append(out,
		certVar("conn.tls.client.pem", tStr, "client certificate, PEM", func(c *x509.Certificate) ref.Val {
			return str(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
		}, none),
		certVar("conn.tls.client.san", tStr, `subject alternative names, e.g. "DNS:a.example, IP Address:10.0.0.1"`, func(c *x509.Certificate) ref.Val {
			var parts []string
			for _, d := range c.DNSNames {
				parts = append(parts, "DNS:"+d)
			}
			for _, m := range c.EmailAddresses {
				parts = append(parts, "email:"+m)
			}
			for _, ip := range c.IPAddresses {
				parts = append(parts, "IP Address:"+ip.String())
			}
			for _, u := range c.URIs {
				parts = append(parts, "URI:"+u.String())
			}
			return str(strings.Join(parts, ", "))
		}, none),
		certVar("conn.tls.client.san.dns_names", tStrList, "SAN DNS names", func(c *x509.Certificate) ref.Val { return strList(c.DNSNames) }, emptyStrs),
		certVar("conn.tls.client.san.email_addresses", tStrList, "SAN email addresses", func(c *x509.Certificate) ref.Val { return strList(c.EmailAddresses) }, emptyStrs),
		certVar("conn.tls.client.san.ip_addresses", tStrList, "SAN IP addresses", func(c *x509.Certificate) ref.Val {
			l := make([]string, len(c.IPAddresses))
			for i, ip := range c.IPAddresses {
				l[i] = ip.String()
			}
			return strList(l)
		}, emptyStrs),
		certVar("conn.tls.client.san.uris", tStrList, "SAN URIs", func(c *x509.Certificate) ref.Val {
			l := make([]string, len(c.URIs))
			for i, u := range c.URIs {
				l[i] = u.String()
			}
			return strList(l)
		}, emptyStrs),
		certVar("conn.tls.client.serial_number", tStr, "serial number, lower-case hex", func(c *x509.Certificate) ref.Val {
			return str(hex.EncodeToString(c.SerialNumber.Bytes()))
		}, none),
		certVar("conn.tls.client.signature_algorithm", tStr, `e.g. "SHA256-RSA"`, func(c *x509.Certificate) ref.Val { return str(c.SignatureAlgorithm.String()) }, none),
		certVar("conn.tls.client.validity.not_before", tTime, "start of validity", func(c *x509.Certificate) ref.Val { return types.Timestamp{Time: c.NotBefore} }, zeroTime),
		certVar("conn.tls.client.validity.not_after", tTime, "end of validity", func(c *x509.Certificate) ref.Val { return types.Timestamp{Time: c.NotAfter} }, zeroTime),
		certVar("conn.tls.client.extensions", cel.ListType(cel.MapType(cel.StringType, cel.DynType)), "extensions: [{id, critical, value}]", func(c *x509.Certificate) ref.Val {
			l := make([]any, len(c.Extensions))
			for i, x := range c.Extensions {
				l[i] = map[string]any{"id": x.Id.String(), "critical": x.Critical, "value": x.Value}
			}
			return adapter.NativeToValue(l)
		}, adapter.NativeToValue([]any{})),
	)
	return out
}
