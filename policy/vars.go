package policy

// The CEL variables: ngrok's names and types, each with a getter that the
// lazy activation (eval.go) calls the first time an expression reads it.

import (
	"crypto/tls"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"github.com/sluicehq/sluice/exchange"
)

// phase masks: where a variable may be read.
const (
	inConnect  = 1 << OnTCPConnect
	inRequest  = 1 << OnHTTPRequest
	inResponse = 1 << OnHTTPResponse
	inHTTP     = inRequest | inResponse
	inAll      = inConnect | inHTTP
)

type variable struct {
	name   string
	typ    *cel.Type
	phases int
	doc    string
	get    func(e *evaluation) ref.Val
}

var (
	tStr      = cel.StringType
	tInt      = cel.IntType
	tBool     = cel.BoolType
	tTime     = cel.TimestampType
	tStrList  = cel.ListType(cel.StringType)
	tHeaders  = cel.MapType(cel.StringType, cel.ListType(cel.StringType))
	tStrMap   = cel.MapType(cel.StringType, cel.StringType)
	tCookies  = cel.MapType(cel.StringType, cel.ListType(cel.MapType(cel.StringType, cel.DynType)))
	tDynMap   = cel.MapType(cel.StringType, cel.DynType)
	adapter   = types.DefaultTypeAdapter
	emptyStrs = types.NewStringList(adapter, nil)
)

func str(s string) ref.Val { return types.String(s) }

// withNative fills the nil getters of the table: those variables are plain
// strings that nativeStr (fast.go) computes; CEL gets them boxed.
func withNative(vs []variable) []variable {
	for i := range vs {
		if vs[i].get == nil {
			f := nativeStr[vs[i].name]
			vs[i].get = func(e *evaluation) ref.Val { return str(f(e)) }
		}
	}
	return vs
}

func varClientIP(e *evaluation) string {
	c := e.conn()
	if c.ClientIP != "" {
		return c.ClientIP
	}
	return addrString(c.ClientAddr.Addr())
}

func varSNI(e *evaluation) string {
	c := e.conn()
	if c.SNI != "" {
		return c.SNI
	}
	if c.TLS != nil {
		return c.TLS.ServerName
	}
	return ""
}

func varReqPath(e *evaluation) string {
	p := e.req().Path
	if u, err := url.PathUnescape(p); err == nil {
		p = u
	}
	return p
}

// variables is the table of every declared variable, in documentation order.
var variables = withNative(append(baseVariables, tlsClientVariables()...))

var baseVariables = []variable{
	// conn.*
	{"conn.client_ip", tStr, inAll, "client IP (after trusted proxies / tunnel)", nil},
	{"conn.client_port", tInt, inAll, "client port", func(e *evaluation) ref.Val { return types.Int(e.conn().ClientAddr.Port()) }},
	{"conn.server_ip", tStr, inAll, "local IP the connection was accepted on", nil},
	{"conn.server_port", tInt, inAll, "local port the connection was accepted on", func(e *evaluation) ref.Val { return types.Int(e.conn().ServerAddr.Port()) }},
	{"conn.bytes_in", tInt, inAll, "bytes received from the client on this connection so far (0 on piped tcp:// endpoints)", func(e *evaluation) ref.Val {
		if b := e.conn().Bytes; b != nil {
			return types.Int(b.In.Load())
		}
		return types.Int(0)
	}},
	{"conn.bytes_out", tInt, inAll, "bytes sent to the client on this connection so far (0 on piped tcp:// endpoints)", func(e *evaluation) ref.Val {
		if b := e.conn().Bytes; b != nil {
			return types.Int(b.Out.Load())
		}
		return types.Int(0)
	}},
	{"conn.ts.start", tTime, inAll, "when the connection was accepted", func(e *evaluation) ref.Val { return types.Timestamp{Time: e.conn().Start} }},
	{"conn.tls.version", tStr, inAll, `TLS version, e.g. "1.3" ("" without TLS)`, func(e *evaluation) ref.Val { return str(tlsVersion(e.conn().TLS)) }},
	{"conn.tls.cipher_suite", tStr, inAll, "negotiated cipher suite name", func(e *evaluation) ref.Val {
		if t := e.conn().TLS; t != nil && t.HandshakeComplete {
			return str(tls.CipherSuiteName(t.CipherSuite))
		}
		return str("")
	}},
	{"conn.tls.sni", tStr, inAll, "server name sent by the client", nil},
	{"conn.tls.negotiated_alpn", tStr, inAll, "ALPN protocol agreed on", func(e *evaluation) ref.Val {
		if t := e.conn().TLS; t != nil {
			return str(t.NegotiatedProtocol)
		}
		return str("")
	}},
	{"conn.tls.session_resumed", tBool, inAll, "TLS session resumption", func(e *evaluation) ref.Val {
		t := e.conn().TLS
		return types.Bool(t != nil && t.DidResume)
	}},

	// conn.geo.* (ngrok's older names) and conn.client_ip.geo.* / .as.*
	{"conn.geo.country_code", tStr, inAll, "ISO country code", func(e *evaluation) ref.Val { return str(e.geo().CountryCode) }},
	{"conn.geo.country", tStr, inAll, "country name (EN)", func(e *evaluation) ref.Val { return str(e.geo().Country) }},
	{"conn.geo.subdivision", tStr, inAll, "subdivision name (EN)", func(e *evaluation) ref.Val { return str(e.geo().Subdivision) }},
	{"conn.geo.city", tStr, inAll, "city name (EN)", func(e *evaluation) ref.Val { return str(e.geo().City) }},
	{"conn.geo.postal_code", tStr, inAll, "postal code", func(e *evaluation) ref.Val { return str(e.geo().PostalCode) }},
	{"conn.geo.latitude", tStr, inAll, "latitude (string)", func(e *evaluation) ref.Val { return str(e.geo().Latitude) }},
	{"conn.geo.longitude", tStr, inAll, "longitude (string)", func(e *evaluation) ref.Val { return str(e.geo().Longitude) }},
	{"conn.geo.radius", tStr, inAll, "accuracy radius in km (string)", func(e *evaluation) ref.Val { return str(e.geo().Radius) }},
	{"conn.client_ip.geo.location.country_code", tStr, inAll, "ISO country code", func(e *evaluation) ref.Val { return str(e.geo().CountryCode) }},
	{"conn.client_ip.geo.location.country", tStr, inAll, "country name (EN)", func(e *evaluation) ref.Val { return str(e.geo().Country) }},
	{"conn.client_ip.geo.location.subdivision", tStr, inAll, "subdivision name (EN)", func(e *evaluation) ref.Val { return str(e.geo().Subdivision) }},
	{"conn.client_ip.geo.location.city", tStr, inAll, "city name (EN)", func(e *evaluation) ref.Val { return str(e.geo().City) }},
	{"conn.client_ip.geo.location.postal_code", tStr, inAll, "postal code", func(e *evaluation) ref.Val { return str(e.geo().PostalCode) }},
	{"conn.client_ip.geo.location.latitude", tStr, inAll, "latitude (string)", func(e *evaluation) ref.Val { return str(e.geo().Latitude) }},
	{"conn.client_ip.geo.location.longitude", tStr, inAll, "longitude (string)", func(e *evaluation) ref.Val { return str(e.geo().Longitude) }},
	{"conn.client_ip.geo.location.radius", tStr, inAll, "accuracy radius in km (string)", func(e *evaluation) ref.Val { return str(e.geo().Radius) }},
	{"conn.client_ip.geo.location.is_eu", tBool, inAll, "country is in the EU", func(e *evaluation) ref.Val { return types.Bool(e.geo().IsEU) }},
	{"conn.client_ip.geo.location.continent", tStr, inAll, "continent name (EN)", func(e *evaluation) ref.Val { return str(e.geo().Continent) }},
	{"conn.client_ip.geo.location.metro_code", tStr, inAll, "metro code", func(e *evaluation) ref.Val { return str(e.geo().MetroCode) }},
	{"conn.client_ip.geo.location.timezone", tStr, inAll, "time zone (IANA name)", func(e *evaluation) ref.Val { return str(e.geo().TimeZone) }},
	{"conn.client_ip.geo.registered_location.country_code", tStr, inAll, "country the IP range is registered in", func(e *evaluation) ref.Val { return str(e.geo().RegisteredCountryCode) }},
	{"conn.client_ip.geo.registered_location.country", tStr, inAll, "registered country name (EN)", func(e *evaluation) ref.Val { return str(e.geo().RegisteredCountry) }},
	{"conn.client_ip.geo.registered_location.continent", tStr, inAll, "registered continent name (EN)", func(e *evaluation) ref.Val { return str(e.geo().RegisteredContinent) }},
	{"conn.client_ip.geo.registered_location.subdivision", tStr, inAll, "registered subdivision name (EN)", func(e *evaluation) ref.Val { return str(e.geo().RegisteredSubdivision) }},
	{"conn.client_ip.geo.registered_location.city", tStr, inAll, "registered city name (EN)", func(e *evaluation) ref.Val { return str(e.geo().RegisteredCity) }},
	{"conn.client_ip.geo.registered_location.is_eu", tBool, inAll, "registered country is in the EU", func(e *evaluation) ref.Val { return types.Bool(e.geo().RegisteredIsEU) }},
	{"conn.client_ip.geo.registered_location.metro_code", tStr, inAll, "registered metro code", func(e *evaluation) ref.Val { return str(e.geo().RegisteredMetroCode) }},
	{"conn.client_ip.geo.registered_location.timezone", tStr, inAll, "registered time zone (IANA name)", func(e *evaluation) ref.Val { return str(e.geo().RegisteredTimeZone) }},
	{"conn.client_ip.as.number", tInt, inAll, "autonomous system number (0 unknown)", func(e *evaluation) ref.Val { return types.Int(e.geo().ASN) }},
	{"conn.client_ip.as.organization", tStr, inAll, "autonomous system organization", func(e *evaluation) ref.Val { return str(e.geo().ASOrg) }},
	{"conn.client_ip.is_private", tBool, inAll, "client IP is private/loopback", func(e *evaluation) ref.Val {
		a := e.conn().ClientAddr.Addr()
		return types.Bool(a.IsPrivate() || a.IsLoopback())
	}},

	// endpoint.*
	{"endpoint.id", tStr, inAll, "endpoint id", nil},
	{"endpoint.url", tStr, inAll, "endpoint URL as configured", nil},
	{"endpoint.host", tStr, inAll, `host the endpoint answers for ("" = any)`, nil},
	{"endpoint.port", tInt, inAll, "endpoint port", func(e *evaluation) ref.Val { return types.Int(e.endpoint().Port) }},
	{"endpoint.protocol", tStr, inAll, "http, https, tcp or tls", func(e *evaluation) ref.Val { return str(e.endpoint().Scheme) }},
	{"endpoint.scheme", tStr, inAll, "same as endpoint.protocol", func(e *evaluation) ref.Val { return str(e.endpoint().Scheme) }},
	{"endpoint.addr", tStr, inAll, "host:port of the endpoint", func(e *evaluation) ref.Val {
		ep := e.endpoint()
		return str(net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)))
	}},
	{"endpoint.internal", tBool, inAll, "endpoint is internal (*.internal)", func(e *evaluation) ref.Val { return types.Bool(e.endpoint().Internal) }},

	// time.*
	{"time.now", tStr, inAll, "current UTC time, RFC 3339", func(e *evaluation) ref.Val { return str(time.Now().UTC().Format(time.RFC3339)) }},

	// req.*
	{"req.method", tStr, inHTTP, "request method", nil},
	{"req.version", tStr, inHTTP, `protocol, e.g. "HTTP/1.1"`, nil},
	{"req.host", tStr, inHTTP, "Host header (may include a port)", nil},
	{"req.url", tStr, inHTTP, "full URL: scheme://host/path?query", func(e *evaluation) ref.Val { return str(fullURL(e.req())) }},
	{"req.url.raw", tStr, inHTTP, "full URL as received", func(e *evaluation) ref.Val { return str(fullURL(e.req())) }},
	{"req.url.scheme", tStr, inHTTP, "http or https", nil},
	{"req.url.host", tStr, inHTTP, "host name without port", func(e *evaluation) ref.Val { h, _ := splitHostPort(e.req().Host); return str(h) }},
	{"req.url.port", tInt, inHTTP, "port (explicit, else the scheme's default)", func(e *evaluation) ref.Val {
		r := e.req()
		_, p := splitHostPort(r.Host)
		if p == 0 {
			p = defaultPort(r.Scheme)
		}
		return types.Int(p)
	}},
	{"req.url.authority", tStr, inHTTP, "host[:port] as sent", nil},
	{"req.url.path", tStr, inHTTP, "decoded path", nil},
	{"req.url.raw_path", tStr, inHTTP, "path as sent (escaped)", nil},
	{"req.url.query", tStr, inHTTP, "query string without '?'", nil},
	{"req.url.uri", tStr, inHTTP, "path and query", func(e *evaluation) ref.Val { return str(e.req().URI()) }},
	{"req.url.user_password", tStr, inHTTP, `always "" (browsers do not send it)`, func(e *evaluation) ref.Val { return str("") }},
	{"req.url.query_params", tHeaders, inHTTP, "parsed query: name → values", func(e *evaluation) ref.Val {
		q, _ := url.ParseQuery(e.req().RawQuery)
		return adapter.NativeToValue(map[string][]string(q))
	}},
	{"req.headers", tHeaders, inHTTP, "headers, matched case-insensitively", func(e *evaluation) ref.Val { return newHeaderMap(reqHeaders(e)) }},
	{"req.trailers", tHeaders, inHTTP, "trailers (after the body)", func(e *evaluation) ref.Val { return newHeaderMap(headerView{h: e.req().Trailer}) }},
	{"req.cookies", tCookies, inHTTP, "cookies: name → [{name, value}]", func(e *evaluation) ref.Val { return reqCookies(e.req().Header) }},
	{"req.content_type", tStr, inHTTP, "media type of Content-Type", nil},
	{"req.content_type.raw", tStr, inHTTP, "Content-Type header", func(e *evaluation) ref.Val { return str(e.req().Header.Get("Content-Type")) }},
	{"req.content_type.parameters", tStrMap, inHTTP, "Content-Type parameters", func(e *evaluation) ref.Val {
		_, p := mediaType(e.req().Header)
		return types.NewStringStringMap(adapter, p)
	}},
	{"req.content_encoding", tStrList, inHTTP, "Content-Encoding values", func(e *evaluation) ref.Val { return listHeader(e.req().Header, "Content-Encoding") }},
	{"req.content_length", tInt, inHTTP, "body length, -1 when unknown", func(e *evaluation) ref.Val { return types.Int(e.req().ContentLength) }},
	{"req.location", tStr, inHTTP, "Location header", func(e *evaluation) ref.Val { return str(e.req().Header.Get("Location")) }},
	{"req.ts.header_received", tTime, inHTTP, "when the request header arrived", func(e *evaluation) ref.Val { return types.Timestamp{Time: e.s.X.Start} }},
	{"req.user_agent", tStr, inHTTP, "User-Agent header", nil},
	{"req.user_agent.name", tStr, inHTTP, "browser/client name", func(e *evaluation) ref.Val { return str(e.ua().Name) }},
	{"req.user_agent.version", tStr, inHTTP, "client version", func(e *evaluation) ref.Val { return str(e.ua().Version) }},
	{"req.user_agent.os", tStr, inHTTP, "operating system", func(e *evaluation) ref.Val { return str(e.ua().OS) }},
	{"req.user_agent.os_version", tStr, inHTTP, "operating system version", func(e *evaluation) ref.Val { return str(e.ua().OSVersion) }},
	{"req.user_agent.device", tStr, inHTTP, "device name when known", func(e *evaluation) ref.Val { return str(e.ua().Device) }},
	{"req.user_agent.url", tStr, inHTTP, "URL in the user agent, if any", func(e *evaluation) ref.Val { return str(e.ua().URL) }},
	{"req.user_agent.is_bot", tBool, inHTTP, "crawler/bot/tool", func(e *evaluation) ref.Val { return types.Bool(e.ua().Bot) }},
	{"req.user_agent.is_mobile", tBool, inHTTP, "mobile device", func(e *evaluation) ref.Val { return types.Bool(e.ua().Mobile) }},
	{"req.user_agent.is_tablet", tBool, inHTTP, "tablet", func(e *evaluation) ref.Val { return types.Bool(e.ua().Tablet) }},
	{"req.user_agent.is_desktop", tBool, inHTTP, "desktop browser", func(e *evaluation) ref.Val { return types.Bool(e.ua().Desktop) }},

	// res.*
	{"res.status_code", tInt, inResponse, "status code", func(e *evaluation) ref.Val { return types.Int(e.res().StatusCode) }},
	{"res.headers", tHeaders, inResponse, "headers, matched case-insensitively", func(e *evaluation) ref.Val { return newHeaderMap(headerView{h: e.res().Header}) }},
	{"res.trailers", tHeaders, inResponse, "trailers", func(e *evaluation) ref.Val { return newHeaderMap(headerView{h: e.res().Trailer}) }},
	{"res.cookies", tCookies, inResponse, "Set-Cookie: name → [cookie], longest path first", func(e *evaluation) ref.Val { return resCookies(e.res().Header) }},
	{"res.content_type", tStr, inResponse, "media type of Content-Type", nil},
	{"res.content_type.raw", tStr, inResponse, "Content-Type header", func(e *evaluation) ref.Val { return str(e.res().Header.Get("Content-Type")) }},
	{"res.content_type.parameters", tStrMap, inResponse, "Content-Type parameters", func(e *evaluation) ref.Val {
		_, p := mediaType(e.res().Header)
		return types.NewStringStringMap(adapter, p)
	}},
	{"res.content_encoding", tStrList, inResponse, "Content-Encoding values", func(e *evaluation) ref.Val { return listHeader(e.res().Header, "Content-Encoding") }},
	{"res.content_length", tInt, inResponse, "body length, -1 when unknown", func(e *evaluation) ref.Val { return types.Int(e.res().ContentLength) }},
	{"res.location", tStr, inResponse, "Location header", func(e *evaluation) ref.Val { return str(e.res().Header.Get("Location")) }},

	// vars.* and actions.ngrok.* (dynamic)
	{"vars", tDynMap, inAll, "variables set by set-vars and actions", func(e *evaluation) ref.Val { return e.userVars() }},
	{"actions.ngrok", tDynMap, inAll, "results of earlier actions, by action name", func(e *evaluation) ref.Val { return e.results() }},
}

// stableVar marks variables that depend only on the connection and the
// endpoint, which actions cannot change.
var stableVar = func() []bool {
	out := make([]bool, len(variables))
	for i, v := range variables {
		out[i] = strings.HasPrefix(v.name, "conn.") || strings.HasPrefix(v.name, "endpoint.")
	}
	return out
}()

// varIndex maps a variable name to its index in variables.
var varIndex = func() map[string]int {
	m := make(map[string]int, len(variables))
	for i, v := range variables {
		m[v.name] = i
	}
	return m
}()

var (
	emptyConn     = &exchange.Conn{}
	emptyReq      = &exchange.Request{Header: http.Header{}, ContentLength: -1}
	emptyRes      = &exchange.Response{Header: http.Header{}, ContentLength: -1}
	emptyEndpoint = &exchange.Endpoint{}
)

func (e *evaluation) conn() *exchange.Conn {
	if e.s.Conn != nil {
		return e.s.Conn
	}
	if e.s.X != nil && e.s.X.Conn != nil {
		return e.s.X.Conn
	}
	return emptyConn
}

func (e *evaluation) req() *exchange.Request {
	if e.s.X != nil && e.s.X.Req != nil {
		return e.s.X.Req
	}
	return emptyReq
}

func (e *evaluation) res() *exchange.Response {
	if e.s.X != nil && e.s.X.Res != nil {
		return e.s.X.Res
	}
	return emptyRes
}

func (e *evaluation) endpoint() *exchange.Endpoint {
	if e.s.X != nil && e.s.X.Endpoint != nil {
		return e.s.X.Endpoint
	}
	if c := e.conn(); c.Endpoint != nil {
		return c.Endpoint
	}
	return emptyEndpoint
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().String()
}

func tlsVersion(t *tls.ConnectionState) string {
	if t == nil || t.Version == 0 {
		return ""
	}
	switch t.Version {
	case tls.VersionTLS10:
		return "1.0"
	case tls.VersionTLS11:
		return "1.1"
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS13:
		return "1.3"
	}
	return tls.VersionName(t.Version)
}

func fullURL(r *exchange.Request) string {
	scheme := r.Scheme
	if scheme == "" {
		scheme = "http"
	}
	return scheme + "://" + r.Host + r.URI()
}

// splitHostPort splits "host:port", "[v6]:port", "host" or "[v6]".
func splitHostPort(hp string) (string, int) {
	if h, p, err := net.SplitHostPort(hp); err == nil {
		n, _ := strconv.Atoi(p)
		return h, n
	}
	return strings.TrimSuffix(strings.TrimPrefix(hp, "["), "]"), 0
}

func defaultPort(scheme string) int {
	switch scheme {
	case "https", "wss":
		return 443
	case "http", "ws":
		return 80
	}
	return 0
}

func mediaType(h http.Header) (string, map[string]string) {
	raw := h.Get("Content-Type")
	if raw == "" {
		return "", map[string]string{}
	}
	mt, params, err := mime.ParseMediaType(raw)
	if err != nil {
		mt, _, _ = strings.Cut(raw, ";")
		return strings.ToLower(strings.TrimSpace(mt)), map[string]string{}
	}
	if params == nil {
		params = map[string]string{}
	}
	return mt, params
}

func listHeader(h http.Header, name string) ref.Val {
	var out []string
	for _, v := range h.Values(name) {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	if len(out) == 0 {
		return emptyStrs
	}
	return types.NewStringList(adapter, out)
}

func reqCookies(h http.Header) ref.Val {
	m := map[string]any{}
	for _, c := range (&http.Request{Header: h}).Cookies() {
		l, _ := m[c.Name].([]any)
		m[c.Name] = append(l, map[string]any{"name": c.Name, "value": c.Value})
	}
	return adapter.NativeToValue(m)
}

func resCookies(h http.Header) ref.Val {
	m := map[string]any{}
	for _, c := range (&http.Response{Header: h}).Cookies() {
		sameSite := ""
		switch c.SameSite {
		case http.SameSiteLaxMode:
			sameSite = "Lax"
		case http.SameSiteStrictMode:
			sameSite = "Strict"
		case http.SameSiteNoneMode:
			sameSite = "None"
		}
		unparsed := map[string]string{}
		for _, u := range c.Unparsed {
			k, v, _ := strings.Cut(u, "=")
			unparsed[k] = v
		}
		l, _ := m[c.Name].([]any)
		cm := map[string]any{
			"name": c.Name, "value": c.Value, "path": c.Path, "domain": c.Domain,
			"expires": c.Expires, "max_age": time.Duration(c.MaxAge) * time.Second,
			"secure": c.Secure, "http_only": c.HttpOnly, "same_site": sameSite,
			"unparsed_attributes": unparsed,
		}
		// longest path first, as ngrok orders them
		i := len(l)
		for i > 0 && len(l[i-1].(map[string]any)["path"].(string)) < len(c.Path) {
			i--
		}
		l = append(l, nil)
		copy(l[i+1:], l[i:])
		l[i] = cm
		m[c.Name] = l
	}
	return adapter.NativeToValue(m)
}
