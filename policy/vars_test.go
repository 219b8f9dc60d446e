package policy

import (
	"net/netip"
	"os"
	"strings"
	"testing"
)

type fakeGeo struct{}

func (fakeGeo) Lookup(ip netip.Addr) GeoInfo {
	if ip == netip.MustParseAddr("203.0.113.7") {
		return GeoInfo{CountryCode: "DE", Country: "Germany", Subdivision: "Berlin", City: "Berlin", PostalCode: "10115",
			Latitude: "52.5", Longitude: "13.4", Radius: "10", IsEU: true, RegisteredCountryCode: "NL", ASN: 64500, ASOrg: "Example AS"}
	}
	return GeoInfo{}
}

// TestVariables evaluates one expression per variable (and macro) against
// the fixture exchange in the phase where the variable exists.
func TestVariables(t *testing.T) {
	SetGeoProvider(fakeGeo{})
	defer SetGeoProvider(nil)
	cases := []struct {
		phase Phase
		expr  string
	}{
		{OnTCPConnect, "conn.client_ip == '203.0.113.7'"},
		{OnTCPConnect, "conn.client_port == 51000"},
		{OnTCPConnect, "conn.server_ip == '127.0.0.1'"},
		{OnTCPConnect, "conn.server_port == 8443"},
		{OnTCPConnect, "conn.ts.start == timestamp('2026-01-02T03:04:05Z')"},
		{OnTCPConnect, "conn.tls.version == '1.3'"},
		{OnTCPConnect, "conn.tls.cipher_suite == 'TLS_AES_128_GCM_SHA256'"},
		{OnTCPConnect, "conn.tls.sni == 'app.example.com'"},
		{OnTCPConnect, "conn.tls.negotiated_alpn == 'h2'"},
		{OnTCPConnect, "conn.tls.session_resumed == false"},
		{OnTCPConnect, "conn.geo.country_code == 'DE'"},
		{OnTCPConnect, "conn.geo.country == 'Germany'"},
		{OnTCPConnect, "conn.geo.subdivision == 'Berlin'"},
		{OnTCPConnect, "conn.geo.city == 'Berlin'"},
		{OnTCPConnect, "conn.geo.postal_code == '10115'"},
		{OnTCPConnect, "double(conn.geo.latitude) >= 52.0"},
		{OnTCPConnect, "double(conn.geo.longitude) < 14.0"},
		{OnTCPConnect, "conn.geo.radius == '10'"},
		{OnTCPConnect, "conn.client_ip.geo.location.country_code in ['DE', 'FR']"},
		{OnTCPConnect, "conn.client_ip.geo.location.country == 'Germany'"},
		{OnTCPConnect, "conn.client_ip.geo.location.subdivision == 'Berlin'"},
		{OnTCPConnect, "conn.client_ip.geo.location.city == 'Berlin'"},
		{OnTCPConnect, "conn.client_ip.geo.location.postal_code == '10115'"},
		{OnTCPConnect, "conn.client_ip.geo.location.latitude == '52.5'"},
		{OnTCPConnect, "conn.client_ip.geo.location.longitude == '13.4'"},
		{OnTCPConnect, "conn.client_ip.geo.location.radius == '10'"},
		{OnTCPConnect, "conn.client_ip.geo.location.is_eu"},
		{OnTCPConnect, "conn.client_ip.geo.registered_location.country_code == 'NL'"},
		{OnTCPConnect, "conn.client_ip.as.number == 64500"},
		{OnTCPConnect, "conn.client_ip.as.organization == 'Example AS'"},
		{OnTCPConnect, "!conn.client_ip.is_private"},
		{OnTCPConnect, "conn.client_ip.startsWith('203.')"}, // string and fields
		{OnTCPConnect, "endpoint.id == 'ep_app'"},
		{OnTCPConnect, "endpoint.url == 'https://app.example.com:443'"},
		{OnTCPConnect, "endpoint.host == 'app.example.com'"},
		{OnTCPConnect, "endpoint.port == 443"},
		{OnTCPConnect, "endpoint.protocol == 'https' && endpoint.scheme == 'https'"},
		{OnTCPConnect, "endpoint.addr == 'app.example.com:443'"},
		{OnTCPConnect, "!endpoint.internal"},
		{OnTCPConnect, "timestamp(time.now) > timestamp('2025-01-01T00:00:00Z')"},
		{OnTCPConnect, "size(vars) == 0"},
		{OnTCPConnect, "size(actions.ngrok) == 0"},

		{OnHTTPRequest, "req.method == 'POST'"},
		{OnHTTPRequest, "req.version == 'HTTP/1.1'"},
		{OnHTTPRequest, "req.host == 'app.example.com:8443'"},
		{OnHTTPRequest, "req.url == 'https://app.example.com:8443/api/v1/a%20b?q=1&q=2&x=y'"},
		{OnHTTPRequest, "req.url.contains('/api')"},
		{OnHTTPRequest, "req.url.raw.endsWith('x=y')"},
		{OnHTTPRequest, "req.url.scheme == 'https'"},
		{OnHTTPRequest, "req.url.host == 'app.example.com'"},
		{OnHTTPRequest, "req.url.port == 8443"},
		{OnHTTPRequest, "req.url.authority == 'app.example.com:8443'"},
		{OnHTTPRequest, "req.url.path == '/api/v1/a b'"},
		{OnHTTPRequest, "req.url.raw_path == '/api/v1/a%20b'"},
		{OnHTTPRequest, "req.url.query == 'q=1&q=2&x=y'"},
		{OnHTTPRequest, "req.url.uri == '/api/v1/a%20b?q=1&q=2&x=y'"},
		{OnHTTPRequest, "req.url.user_password == ''"},
		{OnHTTPRequest, "req.url.query_params['q'] == ['1', '2']"},
		{OnHTTPRequest, "req.headers['x-api-key'] == ['secret']"},
		{OnHTTPRequest, "req.headers['X-API-KEY'][0] == 'secret'"},
		{OnHTTPRequest, "'x-api-key' in req.headers && 'X-Api-Key' in req.headers"},
		{OnHTTPRequest, "!('x-missing' in req.headers)"},
		{OnHTTPRequest, "has(req.headers.location)"},
		{OnHTTPRequest, "req.headers.exists(k, k == 'x-api-key')"}, // iteration sees lower-case names
		{OnHTTPRequest, "size(req.headers) == 7"},
		{OnHTTPRequest, "req.trailers['x-checksum'] == ['abc']"},
		{OnHTTPRequest, "req.cookies['session'][0].value == 'abc' && req.cookies['session'][1].value == 'def'"},
		{OnHTTPRequest, "req.cookies['theme'][0].name == 'theme'"},
		{OnHTTPRequest, "req.content_type == 'application/json'"},
		{OnHTTPRequest, "req.content_type.raw == 'application/json; charset=utf-8'"},
		{OnHTTPRequest, "req.content_type.parameters['charset'] == 'utf-8'"},
		{OnHTTPRequest, "req.content_encoding == ['gzip', 'br']"},
		{OnHTTPRequest, "req.content_length == 42"},
		{OnHTTPRequest, "req.location == '/next'"},
		{OnHTTPRequest, "req.ts.header_received == timestamp('2026-01-02T03:04:06Z')"},
		{OnHTTPRequest, "req.user_agent.contains('iPhone')"},
		{OnHTTPRequest, "req.user_agent.name == 'Safari' && req.user_agent.version == '17.1'"},
		{OnHTTPRequest, "req.user_agent.os == 'iOS' && req.user_agent.os_version == '17.1'"},
		{OnHTTPRequest, "req.user_agent.device == 'iPhone'"},
		{OnHTTPRequest, "req.user_agent.is_mobile && !req.user_agent.is_tablet && !req.user_agent.is_desktop && !req.user_agent.is_bot"},
		{OnHTTPRequest, "req.user_agent.url == ''"},
		{OnHTTPRequest, "conn.client_ip == '203.0.113.7'"}, // conn.* in HTTP phases

		{OnHTTPResponse, "res.status_code == 404"},
		{OnHTTPResponse, "res.headers['x-upstream'] == ['a', 'b']"},
		{OnHTTPResponse, "res.headers['X-UPSTREAM'][1] == 'b'"},
		{OnHTTPResponse, "size(res.trailers) == 0"},
		{OnHTTPResponse, "res.cookies['id'][0].path == '/app/x' && res.cookies['id'][1].http_only"},
		{OnHTTPResponse, "res.cookies['id'][1].secure && res.cookies['id'][1].same_site == 'Lax'"},
		{OnHTTPResponse, "res.cookies['other'][0].max_age == duration('60s')"},
		{OnHTTPResponse, "res.content_type == 'text/html' && res.content_type.raw == 'text/html'"},
		{OnHTTPResponse, "size(res.content_type.parameters) == 0"},
		{OnHTTPResponse, "res.content_encoding == []"},
		{OnHTTPResponse, "res.content_length == 7"},
		{OnHTTPResponse, "res.location == '/moved'"},
		{OnHTTPResponse, "req.method == 'POST'"}, // req.* in the response phase

		// macros
		{OnHTTPRequest, "getReqHeader('x-api-key') == ['secret']"},
		{OnHTTPRequest, "getReqHeader('X-Nope') == []"},
		{OnHTTPRequest, "hasReqHeader('X-Api-Key') && !hasReqHeader('X-Nope')"},
		// Host is a header in ngrok's model, though Go keeps it out of the map.
		{OnHTTPRequest, "hasReqHeader('host') && getReqHeader('Host') == ['app.example.com:8443'] && req.headers['HOST'][0] == req.host"},
		{OnHTTPRequest, "'host' in req.headers && req.headers.exists(k, k == 'host') && size(req.headers) == 7"},
		{OnHTTPResponse, "!hasResHeader('host') && !('host' in res.headers)"},
		{OnHTTPRequest, "getQueryParam('q') == ['1', '2'] && size(getQueryParam('z')) == 0"},
		{OnHTTPRequest, "hasQueryParam('x') && !hasQueryParam('z')"},
		{OnHTTPRequest, "getReqCookie('session').value == 'abc' && hasReqCookie('theme') && !hasReqCookie('x')"},
		{OnHTTPResponse, "getResHeader('Content-Type') == ['text/html'] && hasResHeader('location')"},
		{OnHTTPResponse, "getResCookie('other').value == 'v' && hasResCookie('id')"},
		{OnTCPConnect, "inCidrRange(conn.client_ip, '203.0.113.0/24')"},
		{OnTCPConnect, "!inCidrRange(conn.client_ip, '10.0.0.0/8') && !inCidrRange(conn.client_ip, 'garbage')"},
		{OnTCPConnect, "inCidrRange('::ffff:10.1.1.1', '10.0.0.0/8') && inCidrRange('2001:db8::1', '2001:db8::/32')"},
		{OnTCPConnect, "inCidrRanges(conn.client_ip, ['bad', '10.0.0.0/8', '203.0.113.7/32'])"},
		{OnTCPConnect, "inCidrRange('10.1.2.3', '10.1.2.3') && !inCidrRange('10.1.2.4', '10.1.2.3') && inCidrRange('2001:db8::1', '2001:db8::1')"},
		{OnTCPConnect, "inCidrRange('10.1.2.3', '::ffff:10.0.0.0/104') && !inCidrRange('not-an-ip', '10.0.0.0/8') && !inCidrRange('10.1.2.3', '')"},
		{OnTCPConnect, "inCidrRange('10.1.2.3', '10.1.2.99/8')"}, // host bits are ignored
		{OnTCPConnect, "hash.sha256('hello') == '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'"},
		{OnTCPConnect, "hash.md5('hello') == '5d41402abc4b2a76b9719d911017c592' && 'hello'.md5('base64') == 'XUFAKrxLKna5cZ2REBfFkg=='"},
		{OnTCPConnect, "hash.sha1('hello') == 'aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d'"},
		{OnTCPConnect, "hash.crc32('hello') == '3610a686' && hash.crc32('hello', 'base64') == 'NhCmhg=='"},
		{OnTCPConnect, "hash.crc64('hello') == '3c3eeee2d8100000'"},
		{OnTCPConnect, "hash.xxhash64('hello') == '26c7827d889f6da3'"},
		{OnTCPConnect, "'hello'.sha512().startsWith('9b71d224')"},
		{OnTCPConnect, "basic_auth.encode('username', 'password1') == 'Basic dXNlcm5hbWU6cGFzc3dvcmQx'"},
		{OnTCPConnect, "url.escape('i;md/r/$y') == 'i%3Bmd%2Fr%2F%24y' && 'i;md/r/$y'.escapeUrl() == 'i%3Bmd%2Fr%2F%24y'"},
		{OnTCPConnect, "url.unescape('%2Ffoo') == '/foo' && 'i%3Bmd'.unescapeUrl() == 'i;md'"},
		{OnTCPConnect, "url.parse('https://ngrok.com:8443/p?a=b').host == 'ngrok.com' && 'https://x.io'.parseUrl().scheme == 'https'"},
		{OnTCPConnect, "'https://ngrok.com'.isURL() && !'not a url'.isURL()"},
		{OnTCPConnect, "'192.168.1.1'.isPrivateIp() && !'8.8.8.8'.isPrivateIp()"},
		{OnTCPConnect, "json.decode('{\"a\":\"b\"}')['a'] == 'b' && '[1,2]'.decodeJson()[1] == 2"},
		{OnTCPConnect, "json.encode({'a': 'b'}) == '{\"a\":\"b\"}' && ['a'].encodeJson() == '[\"a\"]' && {'c': 1}.encodeJson() == '{\"c\":1}'"},
		{OnTCPConnect, "'{\"a\":1}'.isJson() && !'nope'.isJson()"},
		{OnTCPConnect, "queryString.decode('a=b&c=d')['c'] == 'd' && 'a=b'.decodeQueryString()['a'] == 'b'"},
		{OnTCPConnect, "queryString.encode({'q': 'policy'}) == 'q=policy' && {'a': 'b'}.encodeQueryString() == 'a=b'"},
		{OnTCPConnect, "'a=b&c=d'.isQueryString() && !'not a query string'.isQueryString()"},
		{OnTCPConnect, "'some:thing'.encodeBase64() == 'c29tZTp0aGluZw==' && 'c29tZTp0aGluZw=='.decodeBase64() == 'some:thing'"},
		{OnTCPConnect, "base64.encode(b'hello') == 'aGVsbG8=' && base64.decode('aGVsbG8=') == b'hello'"},
		{OnTCPConnect, "'ÄB'.lower() == 'äb' && 'äb'.upper() == 'ÄB' && 'TacoCat'.lowerAscii() == 'tacocat'"},
		{OnTCPConnect, "rand.int(0, 10) >= 0 && rand.int(0, 10) <= 10 && rand.int() <= 1 && rand.double() < 1.0"},
		{OnTCPConnect, "['hello', 'mellow'].join(' ') == 'hello mellow' && 'a,b'.split(',') == ['a', 'b']"},
		{OnTCPConnect, "[1, 2, 3, 4].slice(1, 3) == [2, 3] && [3, 1].sort() == [1, 3] && [1, [2]].flatten() == [1, 2]"},
		{OnTCPConnect, "[1, 2, 2].distinct() == [1, 2] && lists.range(3) == [0, 1, 2]"},
		{OnTCPConnect, "'hello'.charAt(4) == 'o' && 'hello mellow'.indexOf('ello') == 1 && 'tacocat'.substring(4) == 'cat'"},
		{OnTCPConnect, "'  trim '.trim() == 'trim' && 'gums'.reverse() == 'smug' && 'x %s'.format(['y']) == 'x y'"},
		{OnTCPConnect, "timestamp('2023-12-25T00:00:00Z').getDate('America/Los_Angeles') == 24"},
		{OnTCPConnect, "[1, 2, 3, 4].map(n, n % 2 == 0, n * 2) == [4, 8]"},
		{OnTCPConnect, "'foobar'.matches('foo.*') && matches('hello', '^h.*o$')"},
		{OnTCPConnect, "'2026-11-25T14:30:00Z'.hour() == 14 && '2026-11-25T01:30:00+02:00'.hour() == 23 && timestamp('2026-11-25T05:00:00Z').hour() == 5"},
		{OnTCPConnect, "time.now.hour() == timestamp(time.now).getHours()"},
	}
	c, x := fixture()
	for _, tc := range cases {
		t.Run(tc.expr, func(t *testing.T) {
			comp := newCompiler("vars.yaml", nil)
			comp.phases = 1 << tc.phase
			e, err := comp.exprAt(tc.expr, nil, 0, true)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			s := &State{Phase: tc.phase, Conn: c}
			if tc.phase != OnTCPConnect {
				s.X = x
			}
			defer s.release()
			ok, err := e.EvalBool(s)
			if err != nil {
				t.Fatalf("eval: %v", err)
			}
			if !ok {
				t.Errorf("%s is false", tc.expr)
			}
		})
	}
}

func TestVariablesUnavailableInPhase(t *testing.T) {
	cases := []struct {
		phase Phase
		expr  string
		want  string
	}{
		{OnTCPConnect, "req.method == 'GET'", "req.method is not available in on_tcp_connect"},
		{OnHTTPRequest, "res.status_code == 200", "res.status_code is not available in on_http_request"},
		{OnHTTPRequest, "hasResHeader('x')", "res.headers is not available in on_http_request"},
		{OnTCPConnect, "getReqHeader('x') == []", "req.headers is not available in on_tcp_connect"},
		{OnTCPConnect, "secrets.get('vault', 'name') == 'x'", "secrets.get is not supported"},
	}
	for _, tc := range cases {
		comp := newCompiler("p.yaml", nil)
		comp.phases = 1 << tc.phase
		_, err := comp.exprAt(tc.expr, nil, 0, true)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s in %s: got %v, want %q", tc.expr, tc.phase, err, tc.want)
		}
	}
}

func TestGeoWithoutProvider(t *testing.T) {
	SetGeoProvider(nil)
	c, _ := fixture()
	comp := newCompiler("p.yaml", nil)
	e, err := comp.exprAt("conn.geo.country_code == '' && conn.client_ip.as.number == 0", nil, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	s := &State{Conn: c}
	if ok, err := e.EvalBool(s); err != nil || !ok {
		t.Fatalf("got %v, %v", ok, err)
	}
}

func TestUserAgents(t *testing.T) {
	cases := []struct {
		ua   string
		want userAgent
	}{
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
			userAgent{Name: "Chrome", Version: "120.0.0.0", OS: "Windows", OSVersion: "10.0", Desktop: true}},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
			userAgent{Name: "Edge", Version: "120.0.2210.91", OS: "Windows", OSVersion: "10.0", Desktop: true}},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0",
			userAgent{Name: "Firefox", Version: "121.0", OS: "macOS", OSVersion: "10.15", Desktop: true}},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
			userAgent{Name: "Chrome", Version: "120.0.0.0", OS: "Android", OSVersion: "14", Mobile: true}},
		{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
			userAgent{Name: "Googlebot", Version: "2.1", URL: "http://www.google.com/bot.html", Bot: true}},
		{"curl/8.4.0", userAgent{Name: "curl", Version: "8.4.0", Bot: true}},
		// The crawler's URL holds "bot" but is not its name.
		{"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; +https://openai.com/bot",
			userAgent{Name: "ChatGPT-User", Version: "1.0", URL: "https://openai.com/bot", Bot: true}},
		{"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.1; +https://openai.com/gptbot)",
			userAgent{Name: "GPTBot", Version: "1.1", URL: "https://openai.com/gptbot", Bot: true}},
		// A crawler with a browser's tokens is named as the crawler.
		{"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.129 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
			userAgent{Name: "Googlebot", Version: "2.1", OS: "Android", OSVersion: "6.0.1", URL: "http://www.google.com/bot.html", Bot: true, Mobile: true}},
		{"", userAgent{}},
	}
	for _, tc := range cases {
		if got := parseUserAgent(tc.ua); got != tc.want {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.ua, got, tc.want)
		}
	}
}

// TestDocsListEveryVariable keeps docs/policy.md in step with the table.
func TestDocsListEveryVariable(t *testing.T) {
	doc, err := os.ReadFile("../docs/policy.md")
	if err != nil {
		t.Skip("docs not found:", err)
	}
	for _, v := range variables {
		if !strings.Contains(string(doc), "`"+v.name+"`") {
			t.Errorf("docs/policy.md does not document %s", v.name)
		}
	}
}
