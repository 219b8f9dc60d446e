package proxy

import (
	"bufio"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// The sluice HTTP/1.x engine's request-head parser. It is deliberately
// stricter than net/http where RFC 9112 lets a recipient choose, because a
// proxy that accepts what the upstream reads differently is a smuggling
// vector:
//
//   - lines end in CRLF; a bare LF (or bare CR) anywhere in the head is 400;
//   - up to maxLeadingCRLF empty lines before the request line are
//     dropped (RFC 9112 §2.2), one more is 400;
//   - obs-fold, whitespace before the colon, non-token names, CTL/NUL in
//     values are 400;
//   - Content-Length is digits only; several must be identical; with
//     Transfer-Encoding it is 400 (and the connection closes);
//   - Transfer-Encoding must be exactly one "chunked": with chunked
//     before another coding (or twice) it is 400, with any other coding
//     501; in HTTP/1.0 it is 400;
//   - HTTP/1.1 needs exactly one valid Host (validHost), whatever the
//     target's form;
//     an absolute-form target's authority replaces it; "*" is for OPTIONS
//     only;
//   - fields whose name has a "_" are dropped (dropUnderscored);
//   - the head is bounded like net/http's (MaxHeaderBytes + 4 KiB): 414 when
//     the request line alone is too long, else 431; at most maxH1Fields
//     fields (431).

// h1Error is a request the engine refuses before any handler runs.
type h1Error struct {
	code  int
	msg   string
	terse bool // the answer's body is the status text only
}

func (e *h1Error) Error() string { return http.StatusText(e.code) + ": " + e.msg }

func badReq(msg string) *h1Error { return &h1Error{http.StatusBadRequest, msg, false} }

var (
	errH1TooLong  = &h1Error{http.StatusRequestURITooLong, "request line too long", false}
	errH1TooLarge = &h1Error{http.StatusRequestHeaderFieldsTooLarge, "request header too large", false}
	errH1Fields   = &h1Error{http.StatusRequestHeaderFieldsTooLarge, "too many header fields", false}
	errH1TE       = &h1Error{http.StatusNotImplemented, "unsupported transfer-encoding", false}
	errH1TEFinal  = badReq("chunked is not the final transfer-encoding")
	errH1Version  = &h1Error{http.StatusHTTPVersionNotSupported, "unsupported HTTP version", false}
	errH1Expect   = &h1Error{http.StatusExpectationFailed, "unsupported expectation", false}
	// Reason-less on purpose: the body is then exactly "400 Bad Request",
	// as net/http answered under the former h1 guard.
	errH1Smuggle = &h1Error{http.StatusBadRequest, "both Content-Length and Transfer-Encoding", true}
	errH1Fold    = &h1Error{http.StatusBadRequest, "obsolete line folding", true}
)

// maxH1Fields bounds the number of header fields in a request head.
const maxH1Fields = 256

// h1head is a parsed request head.
type h1head struct {
	method, target, proto string
	major, minor          int
	host                  string
	url                   url.URL
	cl                    int64 // -1: none
	chunked               bool
	close                 bool // the client wants the connection closed after this
	expect100             bool
	trailer               bool // a Trailer field was declared
	dropped               int  // fields dropped for a "_" in their name
}

var errHeadEOF = errors.New("connection closed before a request head")

// maxLeadingCRLF is how many empty lines (CRLF) may come before a request
// line. RFC 9112 §2.2: a server SHOULD ignore at least one, which some
// clients send after a POST body; more than a few are refused, so a
// stream of CRLFs is answered instead of read forever.
const maxLeadingCRLF = 4

// readHead copies one request head (request line to the empty line, CRLFs
// included) from br into dst[:0], dropping up to maxLeadingCRLF empty
// lines before it; max bounds its size.
func readHead(br *bufio.Reader, dst []byte, max int) ([]byte, error) {
	dst = dst[:0]
	start := 0 // start of the current line in dst
	skipped := 0
	for {
		line, err := br.ReadSlice('\n')
		if len(dst)+len(line) > max {
			if start == 0 {
				return dst, errH1TooLong
			}
			return dst, errH1TooLarge
		}
		dst = append(dst, line...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if len(dst) == 0 {
				return dst, errHeadEOF
			}
			return dst, err
		}
		l := dst[start:]
		if len(l) <= 2 && (len(l) == 1 || l[0] == '\r') {
			if start == 0 {
				if len(l) == 2 && skipped < maxLeadingCRLF {
					skipped++
					dst = dst[:0]
					continue
				}
				return dst, badReq("empty request line")
			}
			return dst, nil
		}
		start = len(dst)
	}
}

// parseHead parses head (as read by readHead) into h, filling hdr (which
// must be empty). Strings point into one copy of head.
func parseHead(head []byte, h *h1head, hdr http.Header) error {
	s := string(head)
	*h = h1head{cl: -1}
	nl := strings.IndexByte(s, '\n')
	if nl < 1 || s[nl-1] != '\r' {
		return badReq("request line must end in CRLF")
	}
	if err := parseRequestLine(s[:nl-1], h); err != nil {
		return err
	}
	s = s[nl+1:]

	nf := strings.Count(s, "\n") - 1
	if nf > maxH1Fields {
		return errH1Fields
	}
	var vals []string
	if nf > 0 {
		vals = make([]string, nf)
	}
	var kb [64]byte
	var hosts int
	keepAlive, teBad, teLate, teChunked := false, false, false, false
	for i := 0; ; i++ {
		nl := strings.IndexByte(s, '\n')
		if nl < 1 || s[nl-1] != '\r' {
			return badReq("header line must end in CRLF")
		}
		line := s[:nl-1]
		s = s[nl+1:]
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errH1Fold
		}
		c := strings.IndexByte(line, ':')
		if c <= 0 {
			return badReq("malformed header line")
		}
		name, val := line[:c], trimOWS(line[c+1:])
		under := false
		for j := 0; j < len(name); j++ {
			if !tokenByte[name[j]] {
				return badReq("invalid header field name")
			}
			under = under || name[j] == '_'
		}
		for j := 0; j < len(val); j++ {
			if b := val[j]; (b < ' ' && b != '\t') || b == 0x7f {
				return badReq("invalid header field value")
			}
		}
		if under {
			// Dropped as nginx does (underscores_in_headers off): CGI,
			// WSGI and PHP-FPM map "_" and "-" to one variable, so
			// X_Forwarded_For would pass for the X-Forwarded-For the
			// proxy writes.
			h.dropped++
			continue
		}
		key := canonKey(name, &kb)
		switch key {
		case "Host":
			hosts++
			if hosts > 1 {
				return badReq("too many Host headers")
			}
			if !validHost(val) {
				return badReq("malformed Host header")
			}
			h.host = val
			continue // net/http keeps Host out of the header map too
		case "Content-Length":
			n, ok := parseLength(val)
			if !ok {
				return badReq("invalid Content-Length")
			}
			if h.cl >= 0 && n != h.cl {
				return badReq("conflicting Content-Length")
			}
			h.cl = n
		case "Transfer-Encoding":
			if h.major == 1 && h.minor == 0 {
				return badReq("Transfer-Encoding in HTTP/1.0")
			}
			// The codings of all Transfer-Encoding lines form one list
			// (RFC 9110 §5.3). Answered after the other checks (obs-fold,
			// CL): chunked anywhere but last is 400 (teLate), any other
			// coding 501 (teBad).
			for v := val; ; {
				el, rest, more := strings.Cut(v, ",")
				if teChunked {
					teLate = true
				}
				teChunked = strings.EqualFold(trimOWS(el), "chunked")
				if !teChunked {
					teBad = true
				}
				if !more {
					break
				}
				v = rest
			}
			h.chunked = true
			continue // like net/http: the framing is in TransferEncoding
		case "Connection":
			if hasTokenFold(val, "keep-alive") {
				keepAlive = true
			}
			if hasTokenFold(val, "close") {
				h.close = true
			}
		case "Expect":
			if h.minor == 0 {
				continue
			}
			if !strings.EqualFold(val, "100-continue") {
				return errH1Expect
			}
			h.expect100 = true
			continue
		case "Trailer":
			h.trailer = true
		}
		if vv, ok := hdr[key]; ok {
			hdr[key] = append(vv, val)
		} else if i < len(vals) {
			vals[i] = val
			hdr[key] = vals[i : i+1 : i+1]
		} else {
			hdr[key] = []string{val}
		}
	}
	if h.minor == 0 && !keepAlive {
		h.close = true
	}
	if (h.chunked || teBad) && h.cl >= 0 {
		return errH1Smuggle
	}
	if teLate {
		// RFC 9112 §6.3 (4): a request whose final coding is not chunked
		// has no reliable length: 400 and close. Chunked applied twice
		// breaks §6.1 the same way.
		return errH1TEFinal
	}
	if teBad {
		// RFC 9112 §6.1: a coding the server does not implement is 501.
		return errH1TE
	}
	if h.chunked {
		h.cl = -1
	}
	if hosts == 0 && h.minor == 1 {
		// RFC 9112 §3.2: every HTTP/1.1 request, absolute-form included,
		// carries Host; a server answers 400 to one without.
		return badReq("missing required Host header")
	}
	if h.url.Host != "" {
		h.host = h.url.Host
	}
	if pv := hdr["Pragma"]; len(pv) > 0 && pv[0] == "no-cache" && hdr["Cache-Control"] == nil {
		hdr["Cache-Control"] = []string{"no-cache"}
	}
	return nil
}

// parseRequestLine checks "METHOD SP request-target SP HTTP/1.x".
func parseRequestLine(line string, h *h1head) error {
	sp := strings.IndexByte(line, ' ')
	if sp <= 0 {
		return badReq("malformed request line")
	}
	h.method = line[:sp]
	for i := 0; i < len(h.method); i++ {
		if !tokenByte[h.method[i]] {
			return badReq("invalid method")
		}
	}
	rest := line[sp+1:]
	sp = strings.IndexByte(rest, ' ')
	if sp <= 0 {
		return badReq("malformed request line")
	}
	h.target, h.proto = rest[:sp], rest[sp+1:]
	switch h.proto {
	case "HTTP/1.1":
		h.major, h.minor = 1, 1
	case "HTTP/1.0":
		h.major, h.minor = 1, 0
	default:
		p := h.proto
		if len(p) == 8 && p[:5] == "HTTP/" && isDigit(p[5]) && p[6] == '.' && isDigit(p[7]) {
			return errH1Version
		}
		return badReq("malformed HTTP version")
	}
	for i := 0; i < len(h.target); i++ {
		if b := h.target[i]; b <= ' ' || b >= 0x7f {
			return badReq("invalid request target")
		} else if b == '#' {
			// No form of request-target has a fragment (RFC 9112 3.2);
			// forwarded, "/a#b" would become another resource, "/a%23b".
			return badReq("fragment in request target")
		}
	}
	return parseTarget(h)
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// parseTarget fills h.url from the request-target in all four forms.
func parseTarget(h *h1head) error {
	t := h.target
	switch {
	case t == "*":
		if h.method != http.MethodOptions {
			return badReq(`"*" target outside OPTIONS`)
		}
		h.url.Path = "*"
		return nil
	case t[0] == '/':
		if q := fastPath(t); q >= 0 {
			h.url.Path = t[:q]
			if q < len(t) {
				h.url.RawQuery = t[q+1:]
				h.url.ForceQuery = q+1 == len(t)
			}
			return nil
		}
		u, err := url.ParseRequestURI(t)
		if err != nil {
			return badReq("invalid request target")
		}
		h.url = *u
		return nil
	case h.method == http.MethodConnect:
		u, err := url.ParseRequestURI("http://" + t)
		if err != nil || u.Path != "" || u.Host == "" || u.RawQuery != "" || u.User != nil || !validHost(u.Host) {
			return badReq("invalid CONNECT target")
		}
		h.url = url.URL{Host: u.Host}
		return nil
	}
	u, err := url.ParseRequestURI(t)
	if err != nil || u.Host == "" || u.User != nil ||
		!(strings.EqualFold(u.Scheme, "http") || strings.EqualFold(u.Scheme, "https")) ||
		!validHost(u.Host) {
		return badReq("invalid absolute-form request target")
	}
	h.url = *u
	return nil
}

// validHost reports whether h is a Host value (or an absolute-form or
// CONNECT target's authority) the proxy accepts. RFC 9112 §3.2 and RFC
// 3986 §3.2.2 allow uri-host [ ":" port ], port being digits (possibly
// none). The uri-host is narrowed, as HAProxy and Envoy narrow it:
//
//   - an IPv6 literal in brackets, without a zone; no IPvFuture, whose
//     contents routing would take for a name once the brackets are gone;
//   - else a name or IPv4 address of letters, digits, "-", ".", "_", "~"
//     and %XX escapes. The grammar's sub-delims (",", ";", "=", "!", "$",
//     "&", "'", "(", ")", "*", "+") are refused: the Host is copied into
//     X-Forwarded-Host and Forwarded's host="...", where "a,for=6.6.6.6"
//     would read as a second hop, and no DNS name has them.
//
// An empty Host is valid: it is what a client sends for a target without
// an authority (RFC 9112 §3.2); a colon with no host before it is not.
func validHost(h string) bool {
	if h == "" {
		return true
	}
	var port string
	if h[0] == '[' {
		i := strings.IndexByte(h, ']')
		if i < 0 {
			return false
		}
		a, err := netip.ParseAddr(h[1:i])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return false
		}
		if rest := h[i+1:]; rest != "" {
			if rest[0] != ':' {
				return false
			}
			port = rest[1:]
		}
	} else {
		name := h
		if i := strings.IndexByte(h, ':'); i >= 0 {
			name, port = h[:i], h[i+1:]
		}
		if name == "" {
			return false
		}
		for i := 0; i < len(name); i++ {
			switch b := name[i]; {
			case hostByte[b]:
			case b == '%' && i+2 < len(name) && isHex(name[i+1]) && isHex(name[i+2]):
				i += 2
			default:
				return false
			}
		}
	}
	for i := 0; i < len(port); i++ {
		if !isDigit(port[i]) {
			return false
		}
	}
	return true
}

func isHex(b byte) bool { return isDigit(b) || 'a' <= b|0x20 && b|0x20 <= 'f' }

// fastPath returns the index of '?' (or len) when t is an origin-form
// target whose path url.Parse would leave unchanged (no escapes, nothing
// EscapedPath would re-escape); -1 otherwise.
func fastPath(t string) int {
	for i := 0; i < len(t); i++ {
		b := t[i]
		if b == '?' {
			return i
		}
		if !pathByte[b] {
			return -1
		}
	}
	return len(t)
}

var tokenByte, pathByte, hostByte [256]bool

func init() {
	for c := '0'; c <= '9'; c++ {
		tokenByte[c], pathByte[c], hostByte[c] = true, true, true
	}
	for c := 'a'; c <= 'z'; c++ {
		tokenByte[c], pathByte[c], hostByte[c] = true, true, true
		tokenByte[c-32], pathByte[c-32], hostByte[c-32] = true, true, true
	}
	for _, c := range "-._~" {
		hostByte[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		tokenByte[c] = true
	}
	for _, c := range "-_.~$&+,/:;=@" {
		pathByte[c] = true
	}
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// hasTokenFold reports whether the comma-separated list v holds tok.
func hasTokenFold(v, tok string) bool {
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(trimOWS(t), tok) {
			return true
		}
	}
	return false
}

// canonKey canonicalises a valid token the way net/http does, without
// allocating for names already canonical or well known.
func canonKey(name string, buf *[64]byte) string {
	canon := true
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (upper && 'a' <= c && c <= 'z') || (!upper && 'A' <= c && c <= 'Z') {
			canon = false
			break
		}
		upper = c == '-'
	}
	if canon {
		return name
	}
	if len(name) > len(buf) {
		return http.CanonicalHeaderKey(name)
	}
	b := buf[:len(name)]
	upper = true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
		upper = c == '-'
	}
	if k, ok := commonKeys[string(b)]; ok {
		return k
	}
	return string(b)
}

var commonKeys = map[string]string{}

func init() {
	for _, k := range []string{"Accept", "Accept-Encoding", "Accept-Language", "Authorization",
		"Cache-Control", "Connection", "Content-Length", "Content-Type", "Cookie", "Expect",
		"Host", "If-Modified-Since", "If-None-Match", "Origin", "Pragma", "Referer",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "User-Agent", "X-Forwarded-For",
		"X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id", "Forwarded",
		"Via", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions",
		"Sec-Websocket-Protocol", "Http2-Settings", "Range", "Keep-Alive"} {
		commonKeys[k] = k
	}
}
