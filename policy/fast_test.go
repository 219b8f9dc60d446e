package policy

import (
	"fmt"
	"reflect"
	"testing"
)

// The native evaluator must agree with CEL on every expression, and must
// actually take the shapes it is for.
func TestFastAgreesWithCEL(t *testing.T) {
	SetGeoProvider(fakeGeo{})
	defer SetGeoProvider(nil)
	cases := []struct {
		phase Phase
		expr  string
		fast  bool // compiled to the native form
	}{
		{OnHTTPRequest, "req.url.path.startsWith('/api')", true},
		{OnHTTPRequest, "req.url.path.startsWith('/API')", true},
		{OnHTTPRequest, "req.url.path.endsWith('a b')", true},
		{OnHTTPRequest, "req.url.path.contains('v1')", true},
		{OnHTTPRequest, "req.url.path.contains('')", true},
		{OnHTTPRequest, "req.url.path.matches('^/api/v[0-9]+/')", true},
		{OnHTTPRequest, "req.url.path.matches('v2$')", true},
		{OnHTTPRequest, "req.method == 'POST'", true},
		{OnHTTPRequest, "req.method != 'POST'", true},
		{OnHTTPRequest, "'POST' == req.method", true},
		{OnHTTPRequest, "conn.client_port == 51000", true},
		{OnHTTPRequest, "conn.client_port != 51000", true},
		{OnHTTPRequest, "req.content_length == 42", true},
		{OnHTTPRequest, "conn.client_ip.startsWith('203.')", true},
		{OnHTTPRequest, "!conn.client_ip.is_private", true},
		{OnHTTPRequest, "conn.client_ip.geo.location.is_eu == true", true},
		{OnHTTPRequest, "conn.client_ip.geo.location.is_eu", true},
		{OnHTTPRequest, "inCidrRange(conn.client_ip, '203.0.113.0/24')", true},
		{OnHTTPRequest, "inCidrRange(conn.client_ip, '10.0.0.0/8')", true},
		{OnHTTPRequest, "!inCidrRange(conn.client_ip, '10.0.0.0/8') && req.method == 'POST'", true},
		{OnHTTPRequest, "inCidrRange(conn.client_ip, 'not a cidr')", true},
		{OnHTTPRequest, "req.host == 'nope' || req.method == 'POST'", true},
		{OnHTTPRequest, "req.host == 'nope' || req.method == 'GET'", true},
		{OnHTTPRequest, "req.method == 'POST' && req.url.path.startsWith('/x')", true},
		{OnHTTPRequest, "!(req.url.path.startsWith('/x') && req.method == 'POST')", true},
		{OnHTTPRequest, "conn.tls.version == '1.3' && conn.tls.sni.endsWith('.example.com')", true},
		{OnHTTPRequest, "'abc'.contains('b') && true", true},
		{OnHTTPRequest, "conn.client_ip == req.host", true},
		{OnHTTPResponse, "res.status_code == 404", true},
		{OnHTTPResponse, "res.status_code != 404 || res.content_type.startsWith('text/')", true},
		{OnHTTPRequest, "req.headers['x-api-key'][0] == 'secret'", true},
		{OnHTTPRequest, "req.headers['X-API-KEY'][0] == 'secret'", true},
		{OnHTTPRequest, "req.headers['x-missing'][0] == 'secret'", true},
		{OnHTTPRequest, "req.headers['x-api-key'][1] == 'secret'", true},
		{OnHTTPRequest, "'x-api-key' in req.headers", true},
		{OnHTTPRequest, "'X-Nope' in req.headers", true},
		{OnHTTPRequest, "hasReqHeader('x-api-key') && getReqHeader('X-Api-Key')[0] == 'secret'", true},
		{OnHTTPRequest, "size(getReqHeader('x-missing')) == 0", true},
		{OnHTTPRequest, "hasReqHeader('host') ? getReqHeader('host')[0] == 'app.example.com:8443' : false", false},
		{OnHTTPRequest, "'Host' in req.headers && req.headers['host'][0] == 'app.example.com:8443'", true},
		{OnHTTPRequest, "getReqHeader('x-missing')[0] == 'a'", true},
		{OnHTTPRequest, "getReqHeader('content-encoding').size() == 1", true},
		{OnHTTPResponse, "hasResHeader('content-type') && getResHeader('content-type')[0].startsWith('text/')", true},
		{OnHTTPResponse, "size(getResHeader('set-cookie')) > 2", true},
		{OnHTTPRequest, "size(req.url.path) > 3", true},
		{OnHTTPRequest, "size('héllo') == 5", true},
		{OnHTTPRequest, "req.url.path.startsWith('/api') && size(req.url.path) > 3", true},
		{OnHTTPRequest, "req.method in ['GET', 'HEAD']", true},
		{OnHTTPRequest, "req.method in ['GET', 'POST']", true},
		{OnHTTPRequest, "!(req.method in ['GET', 'POST'])", true},
		{OnHTTPRequest, "inCidrRanges(conn.client_ip, ['10.0.0.0/8', '203.0.113.0/24'])", true},
		{OnHTTPRequest, "inCidrRanges(conn.client_ip, ['10.0.0.0/8', 'bad'])", true},
		{OnHTTPRequest, "inCidrRange(req.host, '10.0.0.0/8')", true},
		{OnHTTPRequest, "inCidrRange('203.0.113.9', '203.0.113.7')", true},
		{OnHTTPRequest, "inCidrRange('::ffff:203.0.113.9', '203.0.113.0/24')", true},
		{OnHTTPRequest, "conn.client_port > 50000 && conn.client_port <= 51000", true},
		{OnHTTPRequest, "conn.client_port < 50000 || conn.client_port >= 51001", true},
		{OnHTTPRequest, "req.method < 'PUT' && req.method > 'GET'", true},
		{OnHTTPResponse, "res.status_code >= 400 && res.status_code < 500", true},
		{OnHTTPRequest, "true == false", true},
		// CEL only: other maps and lists, macros, other functions, numeric mixes.
		{OnHTTPRequest, "req.url.query_params['q'][0] == '1'", false},
		{OnHTTPRequest, "req.headers.exists(k, k == 'x-api-key')", false},
		{OnHTTPRequest, "req.content_length == int('42')", false},
		{OnHTTPRequest, "conn.client_port > 50000.0", false},
		{OnHTTPRequest, "vars.missing == 'a'", false},
		{OnHTTPRequest, "req.url.path.matches(req.method)", false},
		{OnHTTPRequest, "req.method in [req.host, 'POST']", false},
	}
	c, x := fixture()
	for _, tc := range cases {
		t.Run(tc.expr, func(t *testing.T) {
			comp := newCompiler("fast.yaml", nil)
			comp.phases = 1 << tc.phase
			e, err := comp.exprAt(tc.expr, nil, 0, true)
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			if (e.fast != nil) != tc.fast {
				t.Errorf("native form: %v, want %v", e.fast != nil, tc.fast)
			}
			eval := func(native bool) (any, string) {
				noFast = !native
				defer func() { noFast = false }()
				s := &State{Phase: tc.phase, Conn: c, X: x}
				defer s.release()
				v, err := e.Eval(s)
				return v, fmt.Sprint(err != nil)
			}
			gv, ge := eval(true)
			wv, we := eval(false)
			if !reflect.DeepEqual(gv, wv) || ge != we {
				t.Errorf("native %v (error %s), CEL %v (error %s)", gv, ge, wv, we)
			}
		})
	}
}
