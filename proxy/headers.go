package proxy

import (
	"bufio"
	"net/http"
	"net/netip"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Header handling follows RFC 9110 §7.6.1 and nginx: hop-by-hop fields
// (Connection and the fields it names, Keep-Alive, Proxy-Connection,
// Proxy-Authenticate, Proxy-Authorization, TE except "trailers",
// Transfer-Encoding, Upgrade unless upgrading) never cross the proxy. The
// proxy itself writes Host, the body framing, X-Forwarded-*, Forwarded, Via
// and X-Request-Id.

// dropUnderscored deletes the fields whose name contains "_" and returns
// how many there were. nginx drops them by default (underscores_in_headers
// off): CGI, WSGI and PHP-FPM turn "_" and "-" into the same variable, so
// a client's X_Forwarded_For would stand for the X-Forwarded-For the proxy
// writes. The HTTP/1.x engine drops them while parsing (parseHead); this
// is for HTTP/2 and the net/http engine.
func dropUnderscored(h http.Header) int {
	n := 0
	for k := range h {
		if strings.IndexByte(k, '_') >= 0 {
			delete(h, k)
			n++
		}
	}
	return n
}

// validH2Target reports whether an HTTP/2 :path is one the HTTP/1.x
// engine would accept: origin-form ("/..." without '#', spaces, controls
// or 8-bit bytes), or "*" for OPTIONS.
func validH2Target(method, target string) bool {
	if target == "*" {
		return method == http.MethodOptions
	}
	if target == "" || target[0] != '/' {
		return false
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c == '#' || c >= 0x7f {
			return false
		}
	}
	return true
}

// skipRequestHeader reports whether a client header is not copied verbatim
// to the upstream (either hop-by-hop or rewritten by the proxy).
func skipRequestHeader(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Content-Length", "Host", "Expect", "X-Request-Id", "X-Forwarded-For",
		"X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "Via", "Http2-Settings":
		return true
	}
	return false
}

// skipResponseHeader reports whether an upstream header is not copied to
// the client. Content-Length is set from Response.ContentLength instead.
func skipResponseHeader(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Transfer-Encoding", "Upgrade", "Content-Length", "Via":
		return true
	}
	return false
}

// badTrailer reports whether a field must not cross the proxy in a
// trailer section, in either direction: framing, routing, hop-by-hop,
// authentication and content metadata (RFC 9110 §6.5.1; the names Go's
// net/http refuses as declared trailers), cookies, and the fields sluice
// sets itself, which a trailer would otherwise smuggle past it to a
// recipient that merges trailers into the header section.
func badTrailer(k string) bool {
	switch k {
	case "Authorization", "Cache-Control", "Connection", "Content-Encoding", "Content-Length",
		"Content-Range", "Content-Type", "Expect", "Host", "Keep-Alive", "Max-Forwards", "Pragma",
		"Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "Range", "Realm", "Te",
		"Trailer", "Transfer-Encoding", "Www-Authenticate", "Upgrade", "Http2-Settings",
		"Cookie", "Set-Cookie", "Location", "Via", "Forwarded", "X-Forwarded-For",
		"X-Forwarded-Host", "X-Forwarded-Proto", "X-Request-Id":
		return true
	}
	return false
}

// connectionNames returns the extra field names listed in Connection
// (other than close/keep-alive/upgrade), canonicalised. Usually nil, so the
// common path allocates nothing.
func connectionNames(h http.Header) []string {
	var out []string
	for _, v := range h["Connection"] {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			tok = strings.TrimSpace(tok)
			if tok == "" || strings.EqualFold(tok, "close") || strings.EqualFold(tok, "keep-alive") || strings.EqualFold(tok, "upgrade") {
				continue
			}
			out = append(out, http.CanonicalHeaderKey(tok))
		}
	}
	return out
}

func listed(names []string, k string) bool {
	for _, n := range names {
		if n == k {
			return true
		}
	}
	return false
}

// hasToken reports whether a comma-separated header contains tok.
func hasToken(h http.Header, key, tok string) bool {
	return httpguts.HeaderValuesContainsToken(h[key], tok)
}

func isUpgrade(h http.Header) bool {
	return len(h["Upgrade"]) > 0 && hasToken(h, "Connection", "upgrade")
}

func isGRPC(h http.Header) bool {
	ct := h["Content-Type"]
	return len(ct) > 0 && strings.HasPrefix(ct[0], "application/grpc")
}

func isH2CUpgrade(h http.Header) bool {
	return hasToken(h, "Upgrade", "h2c") && hasToken(h, "Connection", "HTTP2-Settings")
}

// validField reports whether a header line can be written safely; values
// changed by policies are checked here so that no CR/LF reaches the wire.
func validField(k, v string) bool {
	return httpguts.ValidHeaderFieldName(k) && httpguts.ValidHeaderFieldValue(v)
}

// fwd is what the proxy adds to a request for the upstream.
type fwd struct {
	trusted bool   // the peer is a trusted proxy: extend its chains
	peerIP  string // the peer's address as text
	proto   string // http or https, as the client reached us
	host    string // the Host the client asked for
	id      string // request id
	via     string // "1.1 sluice" or "2.0 sluice"
}

// writeHeader writes one header line.
func writeHeader(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// writeList writes k: v1, v2, ..., last as one line.
func writeList(bw *bufio.Writer, k string, vs []string, last string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	for _, v := range vs {
		if !httpguts.ValidHeaderFieldValue(v) {
			continue
		}
		bw.WriteString(v)
		bw.WriteString(", ")
	}
	bw.WriteString(last)
	bw.WriteString("\r\n")
}

// writeForwarded writes X-Forwarded-*, Forwarded, Via and X-Request-Id.
// Chains from the client are kept only when the peer is trusted; otherwise
// they would be spoofable, so a new chain starts with the peer.
func (f *fwd) write(bw *bufio.Writer, h http.Header) {
	var in []string
	if f.trusted {
		in = h["X-Forwarded-For"]
	}
	writeList(bw, "X-Forwarded-For", in, f.peerIP)
	if v := h["X-Forwarded-Proto"]; f.trusted && len(v) > 0 && validField("X-Forwarded-Proto", v[0]) {
		writeHeader(bw, "X-Forwarded-Proto", v[0])
	} else {
		writeHeader(bw, "X-Forwarded-Proto", f.proto)
	}
	if v := h["X-Forwarded-Host"]; f.trusted && len(v) > 0 && validField("X-Forwarded-Host", v[0]) {
		writeHeader(bw, "X-Forwarded-Host", v[0])
	} else if f.host != "" {
		writeHeader(bw, "X-Forwarded-Host", f.host)
	}
	bw.WriteString("Forwarded: ")
	if f.trusted {
		for _, v := range h["Forwarded"] {
			if httpguts.ValidHeaderFieldValue(v) {
				bw.WriteString(v)
				bw.WriteString(", ")
			}
		}
	}
	bw.WriteString("for=")
	if strings.IndexByte(f.peerIP, ':') >= 0 {
		bw.WriteString(`"[`)
		bw.WriteString(f.peerIP)
		bw.WriteString(`]"`)
	} else {
		bw.WriteString(f.peerIP)
	}
	if f.host != "" {
		bw.WriteString(`;host="`)
		bw.WriteString(f.host)
		bw.WriteByte('"')
	}
	bw.WriteString(";proto=")
	bw.WriteString(f.proto)
	bw.WriteString("\r\n")
	writeList(bw, "Via", h["Via"], f.via)
	writeHeader(bw, "X-Request-Id", f.id)
}

// header builds the same fields into an http.Header (h2 upstreams).
func (f *fwd) header(dst, h http.Header) {
	join := func(vs []string, last string) string {
		if len(vs) == 0 {
			return last
		}
		return strings.Join(vs, ", ") + ", " + last
	}
	var in, fin []string
	if f.trusted {
		in, fin = h["X-Forwarded-For"], h["Forwarded"]
	}
	dst["X-Forwarded-For"] = []string{join(in, f.peerIP)}
	proto, host := f.proto, f.host
	if v := h["X-Forwarded-Proto"]; f.trusted && len(v) > 0 {
		proto = v[0]
	}
	if v := h["X-Forwarded-Host"]; f.trusted && len(v) > 0 {
		host = v[0]
	}
	dst["X-Forwarded-Proto"] = []string{proto}
	if host != "" {
		dst["X-Forwarded-Host"] = []string{host}
	}
	node := f.peerIP
	if strings.IndexByte(node, ':') >= 0 {
		node = `"[` + node + `]"`
	}
	el := "for=" + node
	if f.host != "" {
		el += `;host="` + f.host + `"`
	}
	dst["Forwarded"] = []string{join(fin, el+";proto="+f.proto)}
	dst["Via"] = []string{join(h["Via"], f.via)}
	dst["X-Request-Id"] = []string{f.id}
}

// clientFromChain finds the real client behind trusted proxies: walking
// X-Forwarded-For (or Forwarded's for=) from the right, the first address
// that is not a trusted proxy. ok is false when the headers name no usable
// address.
func clientFromChain(h http.Header, trusted []netip.Prefix) (netip.Addr, bool) {
	var addrs []string
	if v := h["X-Forwarded-For"]; len(v) > 0 {
		for _, line := range v {
			for _, a := range strings.Split(line, ",") {
				addrs = append(addrs, strings.TrimSpace(a))
			}
		}
	} else {
		for _, line := range h["Forwarded"] {
			for _, el := range strings.Split(line, ",") {
				for _, pair := range strings.Split(el, ";") {
					k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
					if ok && strings.EqualFold(k, "for") {
						v = strings.Trim(v, `"`)
						if strings.HasPrefix(v, "[") {
							if i := strings.IndexByte(v, ']'); i > 0 {
								v = v[1:i]
							}
						} else if i := strings.IndexByte(v, ':'); i >= 0 && strings.Count(v, ":") == 1 {
							v = v[:i]
						}
						addrs = append(addrs, v)
					}
				}
			}
		}
	}
	var last netip.Addr
	for i := len(addrs) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(addrs[i])
		if err != nil {
			// An address we cannot read ends the trusted chain: the hop
			// to its right is the best client we know.
			break
		}
		a = a.Unmap()
		last = a
		if !inPrefixes(a, trusted) {
			return a, true
		}
	}
	return last, last.IsValid()
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
