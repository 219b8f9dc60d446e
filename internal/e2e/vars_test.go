package e2e

// Every CEL variable, function and macro the engine declares, read in a
// real exchange through the listener: value cases render the expression
// into a custom-response body, match cases use it as a rule's expression.

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"hash/crc32"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/policy"
)

const (
	uaChrome  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
	uaAndroid = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36"
	uaIPad    = "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
	uaBot     = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)

// varCase evaluates expr in phase ("req" default, "res" or "connect").
// With match it is a rule expression and want is "true" or "false";
// otherwise the body `${expr}` must equal want (or match wantRe).
type varCase struct {
	expr   string
	want   string
	wantRe string
	match  bool
	phase  string
	req    request // URL defaults to http://app.test/
	https  bool
	from   string
	geo    bool // answer geo lookups with fakeGeo
	wantFn func(e *env) string
}

type fakeGeo struct{}

func (fakeGeo) Lookup(a netip.Addr) policy.GeoInfo {
	return policy.GeoInfo{CountryCode: "NZ", Country: "New Zealand", Subdivision: "Wellington", City: "Wellington",
		PostalCode: "6011", Latitude: "-41.28", Longitude: "174.77", Radius: "10", IsEU: false,
		RegisteredCountryCode: "AU", ASN: 64500, ASOrg: "Example Net " + a.String(),
		Continent: "Oceania", MetroCode: "0", TimeZone: "Pacific/Auckland",
		RegisteredCountry: "Australia", RegisteredContinent: "Oceania", RegisteredSubdivision: "New South Wales",
		RegisteredCity: "Sydney", RegisteredIsEU: false, RegisteredMetroCode: "1", RegisteredTimeZone: "Australia/Sydney"}
}

func hexOf(h []byte) string { return hex.EncodeToString(h) }

func md5hex(s string) string    { b := md5.Sum([]byte(s)); return hexOf(b[:]) }
func sha1hex(s string) string   { b := sha1.Sum([]byte(s)); return hexOf(b[:]) }
func sha256hex(s string) string { b := sha256.Sum256([]byte(s)); return hexOf(b[:]) }
func sha512b64(s string) string {
	b := sha512.Sum512([]byte(s))
	return base64.StdEncoding.EncodeToString(b[:])
}
func crc32hex(s string) string {
	h := crc32.NewIEEE()
	h.Write([]byte(s))
	return hexOf(h.Sum(nil))
}

var varCases = []varCase{
	// conn.*
	{expr: "conn.client_ip", want: "127.0.0.1"},
	{expr: "conn.client_ip", want: "127.0.0.9", from: "127.0.0.9"},
	{expr: "conn.client_ip", want: "127.0.0.1", phase: "connect"},
	{expr: "conn.client_port > 1023 && conn.client_port < 65536", match: true, want: "true"},
	// Exact counts across keep-alive requests: TestConnBytes.
	{expr: "conn.bytes_in >= size('GET / HTTP/1.1\\r\\n')", match: true, want: "true"},
	{expr: "string(conn.bytes_out)", wantRe: "^[0-9]+$"},
	{expr: "conn.server_ip", want: "127.0.0.1"},
	{expr: "string(conn.server_port)", wantFn: func(e *env) string { _, p, _ := net.SplitHostPort(e.addr("")); return p }},
	{expr: "conn.ts.start <= timestamp(time.now) + duration('1s') && conn.ts.start > timestamp('2024-01-01T00:00:00Z')", match: true, want: "true"},
	{expr: "conn.tls.version", want: "1.3", https: true},
	{expr: "conn.tls.version", want: ""},
	{expr: "conn.tls.cipher_suite", wantRe: `^TLS_`, https: true},
	{expr: "conn.tls.sni", want: "app.test", https: true},
	{expr: "conn.tls.negotiated_alpn", want: "http/1.1", https: true},
	{expr: "conn.tls.session_resumed", match: true, want: "false", https: true},
	{expr: "conn.tls.sni", want: "app.test", https: true, phase: "connect"},
	{expr: "conn.client_ip.is_private", match: true, want: "true"},

	// conn.tls.client.*: the proxy does not ask for client certificates
	// (no mTLS yet), so through a listener every field is empty.
	{expr: "conn.tls.client.subject == '' && conn.tls.client.subject.common_name == '' && size(conn.tls.client.subject.country) == 0 && size(conn.tls.client.subject.locality) == 0 && size(conn.tls.client.subject.organization) == 0 && size(conn.tls.client.subject.organizational_unit) == 0 && size(conn.tls.client.subject.postal_code) == 0 && size(conn.tls.client.subject.province) == 0 && size(conn.tls.client.subject.street_address) == 0", match: true, want: "true", https: true},
	{expr: "conn.tls.client.issuer == '' && conn.tls.client.issuer.common_name == '' && size(conn.tls.client.issuer.country) == 0 && size(conn.tls.client.issuer.locality) == 0 && size(conn.tls.client.issuer.organization) == 0 && size(conn.tls.client.issuer.organizational_unit) == 0 && size(conn.tls.client.issuer.postal_code) == 0 && size(conn.tls.client.issuer.province) == 0 && size(conn.tls.client.issuer.street_address) == 0", match: true, want: "true", https: true},
	{expr: "conn.tls.client.pem == '' && conn.tls.client.san == '' && size(conn.tls.client.san.dns_names) == 0 && size(conn.tls.client.san.email_addresses) == 0 && size(conn.tls.client.san.ip_addresses) == 0 && size(conn.tls.client.san.uris) == 0", match: true, want: "true", https: true},
	{expr: "conn.tls.client.serial_number == '' && conn.tls.client.signature_algorithm == '' && size(conn.tls.client.extensions) == 0 && conn.tls.client.validity.not_before == timestamp('0001-01-01T00:00:00Z') && conn.tls.client.validity.not_after == conn.tls.client.validity.not_before", match: true, want: "true", https: true},

	// geo (a fake provider: the real one needs a MaxMind database)
	{expr: "conn.geo.country_code + conn.geo.country + conn.geo.subdivision + conn.geo.city + conn.geo.postal_code", want: "NZNew ZealandWellingtonWellington6011", geo: true},
	{expr: "conn.geo.latitude + ',' + conn.geo.longitude + ',' + conn.geo.radius", want: "-41.28,174.77,10", geo: true},
	{expr: "conn.client_ip.geo.location.country_code + conn.client_ip.geo.location.country + conn.client_ip.geo.location.subdivision + conn.client_ip.geo.location.city + conn.client_ip.geo.location.postal_code", want: "NZNew ZealandWellingtonWellington6011", geo: true},
	{expr: "conn.client_ip.geo.location.latitude + conn.client_ip.geo.location.longitude + conn.client_ip.geo.location.radius", want: "-41.28174.7710", geo: true},
	{expr: "!conn.client_ip.geo.location.is_eu && conn.client_ip.geo.registered_location.country_code == 'AU'", match: true, want: "true", geo: true},
	{expr: "conn.client_ip.geo.location.continent + '|' + conn.client_ip.geo.location.metro_code + '|' + conn.client_ip.geo.location.timezone", want: "Oceania|0|Pacific/Auckland", geo: true},
	{expr: "[conn.client_ip.geo.registered_location.country, conn.client_ip.geo.registered_location.continent, conn.client_ip.geo.registered_location.subdivision, conn.client_ip.geo.registered_location.city, conn.client_ip.geo.registered_location.metro_code, conn.client_ip.geo.registered_location.timezone].join('|')", want: "Australia|Oceania|New South Wales|Sydney|1|Australia/Sydney", geo: true},
	{expr: "conn.client_ip.geo.registered_location.is_eu", match: true, want: "false", geo: true},
	{expr: "string(conn.client_ip.as.number) + ' ' + conn.client_ip.as.organization", want: "64500 Example Net 127.0.0.1", geo: true},
	{expr: "conn.geo.country_code", want: "NZ", geo: true, phase: "connect"},

	// endpoint.*
	{expr: "endpoint.id", want: "ep_app.test_80"},
	{expr: "endpoint.url", want: "http://app.test"},
	{expr: "endpoint.url", want: "https://app.test", https: true},
	{expr: "endpoint.host + ' ' + string(endpoint.port) + ' ' + endpoint.addr", want: "app.test 80 app.test:80"},
	{expr: "endpoint.protocol + ' ' + endpoint.scheme", want: "https https", https: true},
	{expr: "endpoint.internal", match: true, want: "false"},
	{expr: "endpoint.id", want: "ep_app.test_80", phase: "connect"},

	// time.*
	{expr: "time.now", wantRe: `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`},
	{expr: "timestamp(time.now) > timestamp('2024-01-01T00:00:00Z')", match: true, want: "true", phase: "res"},

	// req.*
	{expr: "req.method", want: "PUT", req: request{Method: "PUT", Body: "x"}},
	{expr: "req.version", want: "HTTP/1.1"},
	{expr: "req.host", want: "app.test:8080", req: request{URL: "http://app.test:8080/"}},
	{expr: "req.url", want: "http://app.test/p/a%20b?x=1&y=2", req: request{URL: "http://app.test/p/a%20b?x=1&y=2"}},
	{expr: "req.url.contains('/p/') && req.url.path.startsWith('/p')", match: true, want: "true", req: request{URL: "http://app.test/p/a"}},
	{expr: "req.url.raw", want: "https://app.test/q?z=1", https: true, req: request{URL: "https://app.test/q?z=1"}},
	{expr: "req.url.scheme + ' ' + req.url.host + ' ' + string(req.url.port) + ' ' + req.url.authority", want: "http app.test 8080 app.test:8080", req: request{URL: "http://app.test:8080/"}},
	{expr: "string(req.url.port)", want: "443", https: true},
	{expr: "req.url.path", want: "/p/a b", req: request{URL: "http://app.test/p/a%20b"}},
	{expr: "req.url.raw_path", want: "/p/a%20b", req: request{URL: "http://app.test/p/a%20b"}},
	{expr: "req.url.query", want: "x=1&y=2", req: request{URL: "http://app.test/?x=1&y=2"}},
	{expr: "req.url.uri", want: "/p?x=1", req: request{URL: "http://app.test/p?x=1"}},
	{expr: "req.url.user_password", want: ""},
	{expr: "req.url.query_params['a'][0] + req.url.query_params['a'][1]", want: "12", req: request{URL: "http://app.test/?a=1&a=2"}},
	{expr: "req.headers['X-Api-Key'][0] + ' ' + req.headers['x-api-key'][0] + ' ' + req.headers['X-API-KEY'][0]", want: "k1 k1 k1", req: request{Header: []string{"x-api-key", "k1"}}},
	{expr: "'x-api-key' in req.headers && !('x-other' in req.headers)", match: true, want: "true", req: request{Header: []string{"X-Api-Key", "k1"}}},
	{expr: "size(req.trailers) == 0", match: true, want: "true"},
	{expr: "req.cookies['session'][0].value + ' ' + req.cookies['session'][0].name", want: "abc session", req: request{Header: []string{"Cookie", "theme=dark; session=abc"}}},
	{expr: "req.content_type + ' | ' + req.content_type.raw + ' | ' + req.content_type.parameters['charset']", want: "application/json | application/json; charset=utf-8 | utf-8",
		req: request{Method: "POST", Body: "{}", Header: []string{"Content-Type", "application/json; charset=utf-8"}}},
	{expr: "req.content_encoding == ['gzip', 'br']", match: true, want: "true", req: request{Header: []string{"Content-Encoding", "gzip, br"}}},
	{expr: "string(req.content_length)", want: "5", req: request{Method: "POST", Body: "hello"}},
	{expr: "req.location", want: "/next", req: request{Header: []string{"Location", "/next"}}},
	{expr: "req.ts.header_received >= conn.ts.start", match: true, want: "true"},
	{expr: "req.user_agent", want: uaChrome, req: request{Header: []string{"User-Agent", uaChrome}}},
	{expr: "req.user_agent.name + ' ' + req.user_agent.version + ' ' + req.user_agent.os + ' ' + req.user_agent.os_version", want: "Chrome 120.0.0.0 Windows 10.0", req: request{Header: []string{"User-Agent", uaChrome}}},
	{expr: "req.user_agent.is_desktop && !req.user_agent.is_mobile && !req.user_agent.is_bot", match: true, want: "true", req: request{Header: []string{"User-Agent", uaChrome}}},
	{expr: "req.user_agent.is_mobile && !req.user_agent.is_desktop", match: true, want: "true", req: request{Header: []string{"User-Agent", uaAndroid}}},
	{expr: "req.user_agent.is_tablet", match: true, want: "true", req: request{Header: []string{"User-Agent", uaIPad}}},
	{expr: "req.user_agent.device", want: "iPad", req: request{Header: []string{"User-Agent", uaIPad}}},
	{expr: "req.user_agent.is_bot", match: true, want: "true", req: request{Header: []string{"User-Agent", uaBot}}},
	{expr: "req.user_agent.url", want: "http://www.google.com/bot.html", req: request{Header: []string{"User-Agent", uaBot}}},
	{expr: "req.user_agent.contains('Googlebot')", match: true, want: "true", req: request{Header: []string{"User-Agent", uaBot}}},
	{expr: "req.url.path", want: "/seen/in/response", phase: "res", req: request{URL: "http://app.test/seen/in/response"}},

	// res.* (the echo upstream answers 200 application/json, X-Upstream: echo)
	{expr: "string(res.status_code)", want: "200", phase: "res"},
	{expr: "res.headers['x-upstream'][0] + res.headers['X-UPSTREAM'][0]", want: "echoecho", phase: "res"},
	{expr: "size(res.trailers) == 0", match: true, want: "true", phase: "res"},
	{expr: "res.cookies['sid'][0].value + ' ' + res.cookies['sid'][0].path", want: "s1 /app", phase: "res", req: request{URL: "http://app.test/cookie"}},
	{expr: "res.content_type + ' | ' + res.content_type.raw", want: "application/json | application/json", phase: "res"},
	{expr: "size(res.content_type.parameters)", want: "0", phase: "res"},
	{expr: "res.content_encoding == []", match: true, want: "true", phase: "res"},
	{expr: "res.content_length > 10", match: true, want: "true", phase: "res"},
	{expr: "res.location", want: "/moved", phase: "res", req: request{URL: "http://app.test/cookie"}},
	{expr: "res.status_code == 200", match: true, want: "false", phase: "res", req: request{URL: "http://app.test/cookie"}},

	// vars and action results
	{expr: "vars.v", want: "from set-vars", phase: "vars"},
	{expr: "actions.ngrok.add_headers.headers_added['x-a']", want: "1", phase: "results"},

	// functions
	{expr: "inCidrRange(conn.client_ip, '127.0.0.0/8')", match: true, want: "true"},
	{expr: "inCidrRange(conn.client_ip, '10.0.0.0/8')", match: true, want: "false"},
	{expr: "inCidrRanges(conn.client_ip, ['10.0.0.0/8', '127.0.0.1/32'])", match: true, want: "true"},
	{expr: "basic_auth.encode('user', 'pass')", want: "Basic dXNlcjpwYXNz"},
	{expr: "url.escape('a b&c') + ' ' + 'x/y z'.escapeUrl()", want: "a+b%26c x%2Fy+z"},
	{expr: "url.unescape('a+b%26c') + ' ' + 'x%2Fy'.unescapeUrl()", want: "a b&c x/y"},
	{expr: "url.parse('https://u@h.test:8443/p?q=1').port + req.url.parseUrl().path", want: "8443/z", req: request{URL: "http://app.test/z"}},
	{expr: "req.url.isURL() && !'not a url'.isURL()", match: true, want: "true"},
	{expr: "'10.1.2.3'.isPrivateIp() && !conn.client_ip.isPrivateIp() && !'8.8.8.8'.isPrivateIp()", match: true, want: "true"},
	{expr: "['a', 1].encodeJson() + {'k': 'v'}.encodeJson()", want: `["a",1]{"k":"v"}`},
	{expr: "json.decode('{\"a\":\"b\"}').a + '{\"c\":\"d\"}'.decodeJson().c", want: "bd"},
	{expr: "'{}'.isJson() && !'{'.isJson()", match: true, want: "true"},
	{expr: "queryString.decode('a=1&b=2').b + 'c=3'.decodeQueryString().c", want: "23"},
	{expr: "queryString.encode({'a': '1'}) + ' ' + {'b': 'x y'}.encodeQueryString()", want: "a=1 b=x+y"},
	{expr: "'a=1'.isQueryString() && !'nothing'.isQueryString()", match: true, want: "true"},
	{expr: "'hi'.encodeBase64() + ' ' + 'aGk='.decodeBase64()", want: "aGk= hi"},
	{expr: "'MiXeD'.lower() + 'MiXeD'.upper()", want: "mixedMIXED"},
	{expr: "rand.double() >= 0.0 && rand.double() < 1.0 && rand.int() >= 0 && rand.int() <= 1", match: true, want: "true"},
	{expr: "rand.int(5, 5)", want: "5"},
	{expr: "'2026-11-25T14:30:00Z'.hour() + timestamp('2026-11-25T05:00:00Z').hour()", want: "19"},
	{expr: "hash.md5('abc') + ' ' + 'abc'.md5()", want: md5hex("abc") + " " + md5hex("abc")},
	{expr: "hash.sha1('abc') + ' ' + 'abc'.sha1()", want: sha1hex("abc") + " " + sha1hex("abc")},
	{expr: "hash.sha256(req.url.path) + ' ' + req.url.path.sha256()", want: sha256hex("/h") + " " + sha256hex("/h"), req: request{URL: "http://app.test/h"}},
	{expr: "hash.sha512('abc', 'base64') + ' ' + 'abc'.sha512('base64')", want: sha512b64("abc") + " " + sha512b64("abc")},
	{expr: "hash.crc32('abc') + ' ' + 'abc'.crc32()", want: crc32hex("abc") + " " + crc32hex("abc")},
	{expr: "size(hash.crc64('abc')) == 16 && 'abc'.crc64() == hash.crc64('abc')", match: true, want: "true"},
	{expr: "size(hash.xxhash64('abc')) == 16 && 'abc'.xxhash64() == hash.xxhash64('abc')", match: true, want: "true"},

	// macros
	{expr: "getReqHeader('x-a')[0] + string(hasReqHeader('X-A')) + string(hasReqHeader('x-b'))", want: "1truefalse", req: request{Header: []string{"X-A", "1"}}},
	{expr: "getQueryParam('q')[0] + string(hasQueryParam('q')) + string(hasQueryParam('r'))", want: "vtruefalse", req: request{URL: "http://app.test/?q=v"}},
	{expr: "getReqCookie('c').value + string(hasReqCookie('c')) + string(hasReqCookie('d'))", want: "1truefalse", req: request{Header: []string{"Cookie", "c=1"}}},
	{expr: "getResHeader('x-upstream')[0] + string(hasResHeader('X-Upstream')) + string(hasResHeader('x-none'))", want: "echotruefalse", phase: "res"},
	{expr: "getResCookie('sid').value + string(hasResCookie('sid')) + string(hasResCookie('x'))", want: "s1truefalse", phase: "res", req: request{URL: "http://app.test/cookie"}},
}

// varPolicy builds the policy for one case.
func varPolicy(c varCase) string {
	body := "${" + c.expr + "}"
	if c.match {
		return phaseOf(c) + `:
  - expressions:
      - |-
        ` + c.expr + `
    actions:
      - type: custom-response
        config: {status_code: 200, body: "true"}
  - actions:
      - type: custom-response
        config: {status_code: 200, body: "false"}
`
	}
	switch c.phase {
	case "connect":
		return `
on_tcp_connect:
  - actions:
      - type: set-vars
        config:
          vars:
            - got: |-
                ` + body + `
on_http_request:
  - actions:
      - type: custom-response
        config:
          body: ${vars.got}
`
	case "vars":
		return `
on_http_request:
  - actions:
      - type: set-vars
        config:
          vars:
            - v: from set-vars
  - actions:
      - type: custom-response
        config:
          body: |-
            ` + body + "\n"
	case "results":
		return `
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers: {x-a: 1}
  - actions:
      - type: custom-response
        config:
          body: |-
            ` + body + "\n"
	}
	return phaseOf(c) + `:
  - actions:
      - type: custom-response
        config:
          headers: {content-type: text/plain}
          body: |-
            ` + body + "\n"
}

func phaseOf(c varCase) string {
	if c.phase == "res" {
		return "on_http_response"
	}
	return "on_http_request"
}

// varRespond is the upstream for variable cases: /cookie sets a cookie, a
// Location and a 302; everything else is the JSON echo.
func varRespond(w http.ResponseWriter, r *http.Request, s *seen) {
	if r.URL.Path == "/cookie" {
		w.Header().Add("Set-Cookie", "sid=s0; Path=/")
		w.Header().Add("Set-Cookie", "sid=s1; Path=/app; HttpOnly")
		w.Header().Set("Location", "/moved")
		w.WriteHeader(http.StatusFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Upstream", "echo")
	w.Write([]byte(`{"echo":true}`))
}

func TestVariablesAndFunctions(t *testing.T) {
	for _, c := range varCases {
		name := c.expr
		if c.phase != "" {
			name = c.phase + ":" + name
		}
		if c.https {
			name = "https:" + name
		}
		t.Run(name, func(t *testing.T) {
			if c.geo {
				policy.SetGeoProvider(fakeGeo{})
				t.Cleanup(func() { policy.SetGeoProvider(nil) })
			}
			u := "http://app.test"
			if c.https {
				u = "https://app.test"
			}
			e := startWith(t, setup{Respond: varRespond}, ep{URL: u, Policy: varPolicy(c)})
			q := c.req
			if q.URL == "" {
				q.URL = u + "/"
			}
			r := send(t, e.clientFrom(c.from), q)
			if r.Err != nil {
				t.Fatalf("request failed: %v", r.Err)
			}
			if r.Status != 200 {
				t.Fatalf("status %d, body %q", r.Status, r.Body)
			}
			want := c.want
			if c.wantFn != nil {
				want = c.wantFn(e)
			}
			if c.wantRe != "" {
				if !regexp.MustCompile(c.wantRe).MatchString(r.Body) {
					t.Fatalf("%s = %q, want a match of %s", c.expr, r.Body, c.wantRe)
				}
				return
			}
			if r.Body != want {
				t.Fatalf("%s = %q, want %q", c.expr, r.Body, want)
			}
		})
	}
}

// TestInterpolationInHeaderValues: ${} inside header values of add-headers
// (request and response) and custom-response, mixed with text.
func TestInterpolationInHeaderValues(t *testing.T) {
	e := start(t, ep{URL: "http://app.test", Policy: `
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            x-mix: "ip=${conn.client_ip} path=${req.url.path} n=${size(req.url.query_params)}"
            x-dollar: "cost $5 and ${'lit'}"
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers:
            x-res: "${req.method}/${res.status_code}/${res.headers['content-type'][0]}"
`})
	r := get(t, e.client(), "http://app.test/i?a=1&b=2")
	check(t, e, r, 0, expect{Status: 200,
		UpHeaders: hdr("x-mix", "ip=127.0.0.1 path=/i n=2", "x-dollar", "cost $5 and lit"),
		Headers:   hdr("x-res", "GET/200/application/json")})
}

// declared lists the names the engine declares, read from the source of
// package policy (the variables table, certVar/names helpers, functions
// and macros), so that a new one without a case here fails
// TestEveryDeclaredNameHasACase.
func declared(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "policy", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("policy sources: %v", err)
	}
	var src strings.Builder
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	all := src.String()
	var names []string
	grab := func(re string) {
		for _, m := range regexp.MustCompile(re).FindAllStringSubmatch(all, -1) {
			if !strings.HasPrefix(m[1], "_") && !strings.HasSuffix(m[1], ".") {
				names = append(names, m[1])
			}
		}
	}
	grab(`(?m)^\s*\{"([a-z_.]+)", t`)               // the variables table
	grab(`certVar\("([a-z_.]+)"`)                   // conn.tls.client.* leaves
	grab(`cel\.Function\("([A-Za-z_.]+)"`)          // functions
	grab(`(?:lookup|presence)Macro\("([A-Za-z]+)"`) // macros
	// names("prefix", ...) declares prefix and prefix+each certVar suffix.
	suffixes := regexp.MustCompile(`certVar\(prefix\+"(\.[a-z_]+)"`).FindAllStringSubmatch(all, -1)
	for _, m := range regexp.MustCompile(`names\("([a-z_.]+)"`).FindAllStringSubmatch(all, -1) {
		names = append(names, m[1])
		for _, sfx := range suffixes {
			names = append(names, m[1]+sfx[1])
		}
	}
	i := strings.Index(all, "var hashes = map[string]")
	for _, m := range regexp.MustCompile(`(?m)^\s*"([a-z0-9]+)":`).FindAllStringSubmatch(all[i:i+600], -1) {
		names = append(names, "hash."+m[1], "."+m[1]+"(")
	}
	if len(names) < 100 {
		t.Fatalf("found only %d declared names; did the source layout change?", len(names))
	}
	return names
}

func TestEveryDeclaredNameHasACase(t *testing.T) {
	var all strings.Builder
	for _, c := range varCases {
		all.WriteString(c.expr + "\n")
	}
	text := all.String()
	for _, n := range declared(t) {
		if n == "vars" || n == "actions.ngrok" {
			continue // covered by the vars/results phases
		}
		found := false
		for _, m := range regexp.MustCompile(regexp.QuoteMeta(n)+`(?:[^a-z_.]|$)`).FindAllStringIndex(text, -1) {
			if m[0] == 0 || !strings.ContainsAny(text[m[0]-1:m[0]], "abcdefghijklmnopqrstuvwxyz_") || strings.HasPrefix(n, ".") {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("%s is declared by the engine but no e2e case reads it", n)
		}
	}
}
