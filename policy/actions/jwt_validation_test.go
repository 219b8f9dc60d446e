package actions

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/sluicehq/sluice/internal/testlog"
	"github.com/sluicehq/sluice/policy"
)

// Test keys, generated once per test binary.
var jwtTestKeys = sync.OnceValue(func() map[string]crypto.Signer {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaKey2, _ := rsa.GenerateKey(rand.Reader, 2048)
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ec521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	return map[string]crypto.Signer{"rsa": rsaKey, "rsa2": rsaKey2, "ec256": ec256, "ec384": ec384, "ec521": ec521, "ed": ed}
})

// jwksServer serves a JWKS on 127.0.0.1 whose keys (by kid) a test can
// change, and counts the fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	kids    []string
	status  int
	body    string // when set, served instead of the key set
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T, kids ...string) *jwksServer {
	t.Helper()
	js := &jwksServer{kids: kids, status: 200}
	js.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		js.fetches.Add(1)
		js.mu.Lock()
		defer js.mu.Unlock()
		if js.status != 200 {
			w.WriteHeader(js.status)
			return
		}
		if js.body != "" {
			io.WriteString(w, js.body)
			return
		}
		var set jose.JSONWebKeySet
		for _, kid := range js.kids {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: jwtTestKeys()[kid].Public(), KeyID: kid, Use: "sig"})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(js.Close)
	return js
}

func (js *jwksServer) set(f func(js *jwksServer)) {
	js.mu.Lock()
	defer js.mu.Unlock()
	f(js)
}

// signJWT signs claims with the test key named kid (also the header kid;
// kid "" signs with the RSA key and sends no kid).
func signJWT(t *testing.T, key string, alg jose.SignatureAlgorithm, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jwtTestKeys()[key]}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := sig.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsignedJWT builds a token by hand with any header (alg none, HS256).
func unsignedJWT(header, claims map[string]any, sig string) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "." + sig
}

func goodClaims() map[string]any {
	now := time.Now().Unix()
	return map[string]any{"iss": "https://issuer.test/", "aud": "urn:sluice:api", "sub": "alice",
		"iat": now - 10, "nbf": now - 10, "exp": now + 300}
}

func with(c map[string]any, kv ...any) map[string]any {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

func jwtPolicy(jwksURL, extra string) string {
	return `
on_http_request:
  - actions:
      - type: jwt-validation
        config:
          issuer:
            allow_list: [{value: "https://issuer.test/"}, {value: "https://other.test"}]
          audience:
            allow_list: [{value: "urn:sluice:api"}]
          http:
            tokens:
              - {type: jwt, method: header, name: Authorization, prefix: "Bearer "}
          jws:
            allowed_algorithms: [RS256, PS256, ES256, ES384, ES512, EdDSA]
            keys:
              sources:
                additional_jkus: ["` + jwksURL + `"]
` + extra + `
on_http_response:
  - expressions: ["has(actions.ngrok.jwt_validation.error)"]
    actions:
      - type: add-headers
        config:
          headers:
            x-jwt-error: ${actions.ngrok.jwt_validation.error.code}
`
}

// jwtProxy serves policy through miniProxy in front of a backend that counts
// its requests and echoes the body and the header X-Sub it received.
func jwtProxy(t *testing.T, pol string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen-Sub", r.Header.Get("X-Sub"))
		w.Header().Set("X-Seen-Verified", r.Header.Get("X-Verified"))
		io.WriteString(w, "upstream:"+string(b))
	}))
	t.Cleanup(backend.Close)
	h, err := policy.NewInlineHandle("jwt.yaml", []byte(pol), policy.Options{Log: slog.New(slog.NewTextHandler(&testlog.Buffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	px := miniProxy(t, h, backend.URL)
	t.Cleanup(px.Close)
	return px, &hits
}

type jwtReq struct {
	method, ctype, body string
	header              []string
}

func doJWT(t *testing.T, px *httptest.Server, hits *atomic.Int64, r jwtReq) (status int, body string, res *http.Response, reached bool) {
	t.Helper()
	if r.method == "" {
		r.method = "GET"
	}
	req, _ := http.NewRequest(r.method, px.URL+"/api", strings.NewReader(r.body))
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	for i := 0; i+1 < len(r.header); i += 2 {
		req.Header.Add(r.header[i], r.header[i+1])
	}
	before := hits.Load()
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res.StatusCode, string(b), res, hits.Load() > before
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

func TestJWTValidationThroughHTTP(t *testing.T) {
	js := newJWKSServer(t, "rsa", "ec256", "ec384", "ec521", "ed")
	px, hits := jwtProxy(t, jwtPolicy(js.URL+"/jwks.json", ""))
	now := time.Now().Unix()
	tests := []struct {
		name    string
		header  []string
		status  int
		errCode string
	}{
		{"RS256", bearer(signJWT(t, "rsa", jose.RS256, "rsa", goodClaims())), 200, ""},
		{"PS256", bearer(signJWT(t, "rsa", jose.PS256, "rsa", goodClaims())), 200, ""},
		{"ES256", bearer(signJWT(t, "ec256", jose.ES256, "ec256", goodClaims())), 200, ""},
		{"ES384", bearer(signJWT(t, "ec384", jose.ES384, "ec384", goodClaims())), 200, ""},
		{"ES512", bearer(signJWT(t, "ec521", jose.ES512, "ec521", goodClaims())), 200, ""},
		{"EdDSA", bearer(signJWT(t, "ed", jose.EdDSA, "ed", goodClaims())), 200, ""},
		{"no kid: every key is tried", bearer(signJWT(t, "ec256", jose.ES256, "", goodClaims())), 200, ""},
		{"second issuer", bearer(signJWT(t, "rsa", jose.RS256, "rsa", with(goodClaims(), "iss", "https://other.test"))), 200, ""},
		{"aud as a list", bearer(signJWT(t, "rsa", jose.RS256, "rsa", with(goodClaims(), "aud", []string{"x", "urn:sluice:api"}))), 200, ""},
		{"lower-case bearer", []string{"Authorization", "bearer " + signJWT(t, "rsa", jose.RS256, "rsa", goodClaims())}, 200, ""},
		{"no token", nil, 401, "missing_token"},
		{"other scheme", []string{"Authorization", "Basic " + signJWT(t, "rsa", jose.RS256, "rsa", goodClaims())}, 401, "missing_token"},
		{"Bearer and nothing", []string{"Authorization", "Bearer "}, 401, "missing_token"},
		{"bad signature", bearer(flipSig(signJWT(t, "rsa", jose.RS256, "rsa", goodClaims()))), 401, "invalid_signature"},
		{"bad EdDSA signature", bearer(flipSig(signJWT(t, "ed", jose.EdDSA, "ed", goodClaims()))), 401, "invalid_signature"},
		{"bad signature, no kid", bearer(flipSig(signJWT(t, "ec256", jose.ES256, "", goodClaims()))), 401, "invalid_signature"},
		{"signed by another key with a known kid", bearer(signJWT(t, "rsa2", jose.RS256, "rsa", goodClaims())), 401, "invalid_signature"},
		{"tampered payload", bearer(tamperPayload(t, signJWT(t, "rsa", jose.RS256, "rsa", goodClaims()))), 401, "invalid_signature"},
		{"algorithm not allowed", bearer(signJWT(t, "rsa", jose.RS512, "rsa", goodClaims())), 401, "algorithm_not_allowed"},
		{"alg none", bearer(unsignedJWT(map[string]any{"alg": "none", "kid": "rsa"}, goodClaims(), "")), 401, "algorithm_not_allowed"},
		{"HS256 with the public key as secret", bearer(unsignedJWT(map[string]any{"alg": "HS256", "kid": "rsa"}, goodClaims(), "c2ln")), 401, "algorithm_not_allowed"},
		{"header alg and key type mismatch", bearer(relabel(t, signJWT(t, "ec256", jose.ES256, "ec256", goodClaims()), "RS256")), 401, "invalid_signature"},
		{"expired", bearer(signJWT(t, "rsa", jose.RS256, "rsa", with(goodClaims(), "exp", now-1))), 401, "token_expired"},
		{"not yet valid", bearer(signJWT(t, "rsa", jose.RS256, "rsa", with(goodClaims(), "nbf", now+120))), 401, "token_not_yet_valid"},
		{"issued in the future", bearer(signJWT(t, "rsa", jose.RS256, "rsa", with(goodClaims(), "iat", now+120))), 401, "invalid_claims"},
		{"exp not a number", bearer(signJWT(t, "rsa", jose.RS256, "rsa", with(goodClaims(), "exp", "tomorrow"))), 401, "invalid_claims"},
		{"wrong issuer", bearer(signJWT(t, "rsa", jose.RS256, "rsa", with(goodClaims(), "iss", "https://issuer.test"))), 401, "invalid_issuer"},
		{"no issuer", bearer(signJWT(t, "rsa", jose.RS256, "rsa", with(goodClaims(), "iss", nil))), 401, "invalid_issuer"},
		{"wrong audience", bearer(signJWT(t, "rsa", jose.RS256, "rsa", with(goodClaims(), "aud", "urn:other"))), 401, "invalid_audience"},
		{"no audience", bearer(signJWT(t, "rsa", jose.RS256, "rsa", with(goodClaims(), "aud", nil))), 401, "invalid_audience"},
		{"unknown kid", bearer(signJWT(t, "rsa2", jose.RS256, "rsa2", goodClaims())), 401, "unknown_key"},
		{"malformed: two parts", bearer("abc.def"), 401, "malformed_token"},
		{"malformed: not base64", bearer("!!!.???.***"), 401, "malformed_token"},
		{"malformed: not JSON", bearer(base64.RawURLEncoding.EncodeToString([]byte("hi")) + ".e30.sig"), 401, "malformed_token"},
		{"encrypted token (JWE) is refused", bearer("a.b.c.d.e"), 401, "malformed_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, res, reached := doJWT(t, px, hits, jwtReq{header: tt.header})
			if status != tt.status {
				t.Fatalf("status %d, want %d (body %q, error %q)", status, tt.status, body, res.Header.Get("X-Jwt-Error"))
			}
			if tt.status == 200 {
				if !reached || body != "upstream:" {
					t.Errorf("upstream reached=%v body %q", reached, body)
				}
				return
			}
			if reached {
				t.Errorf("the upstream was contacted for a refused request")
			}
			if body != "" {
				t.Errorf("body %q, want none", body)
			}
			got := res.Header.Get("X-Jwt-Error")
			if tt.errCode != "" && got != tt.errCode {
				t.Errorf("error.code %q, want %q", got, tt.errCode)
			}
			if got == "" {
				t.Errorf("no error.code recorded")
			}
		})
	}
}

// flipSig changes one character in the middle of the signature.
func flipSig(tok string) string {
	i := strings.LastIndexByte(tok, '.') + 10
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

// tamperPayload changes the sub claim and keeps the signature.
func tamperPayload(t *testing.T, tok string) string {
	p := strings.Split(tok, ".")
	b, _ := base64.RawURLEncoding.DecodeString(p[1])
	b = []byte(strings.Replace(string(b), `"alice"`, `"admin"`, 1))
	if !strings.Contains(string(b), "admin") {
		t.Fatal("tamper failed")
	}
	return p[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + p[2]
}

// relabel rewrites the header's alg, keeping the rest.
func relabel(t *testing.T, tok, alg string) string {
	p := strings.Split(tok, ".")
	b, _ := base64.RawURLEncoding.DecodeString(p[0])
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	h["alg"] = alg
	b, _ = json.Marshal(h)
	return base64.RawURLEncoding.EncodeToString(b) + "." + p[1] + "." + p[2]
}

// The result variables of a verified token, read by the next action.
func TestJWTValidationResults(t *testing.T) {
	js := newJWKSServer(t, "ec256")
	px, hits := jwtProxy(t, jwtPolicy(js.URL, `
      - type: add-headers
        config:
          headers:
            x-sub: ${actions.ngrok.jwt_validation.tokens[0].payload.sub}
            x-verified: "${actions.ngrok.jwt_validation.tokens[0].verified} ${actions.ngrok.jwt_validation.tokens[0].location} ${actions.ngrok.jwt_validation.tokens[0].location_property} ${actions.ngrok.jwt_validation.tokens[0].header.kid}"`))
	tok := signJWT(t, "ec256", jose.ES256, "ec256", goodClaims())
	status, _, res, _ := doJWT(t, px, hits, jwtReq{header: bearer(tok)})
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	if got := res.Header.Get("X-Seen-Sub"); got != "alice" {
		t.Errorf("payload.sub %q", got)
	}
	if got, want := res.Header.Get("X-Seen-Verified"), "true header Authorization ec256"; got != want {
		t.Errorf("verified/location/location_property/header.kid = %q, want %q", got, want)
	}
}

// Tokens read from a JSON or form body; the upstream still gets the body.
// With two tokens, both must be there.
func TestJWTValidationBodyAndMultipleTokens(t *testing.T) {
	js := newJWKSServer(t, "rsa", "ed")
	pol := strings.Replace(jwtPolicy(js.URL, ""), `              - {type: jwt, method: header, name: Authorization, prefix: "Bearer "}`,
		`              - {type: access_token, method: header, name: Authorization, prefix: "Bearer "}
              - {type: it+jwt, method: body, name: _id_token}`, 1)
	px, hits := jwtProxy(t, pol)
	at := signJWT(t, "rsa", jose.RS256, "rsa", goodClaims())
	it := signJWT(t, "ed", jose.EdDSA, "ed", goodClaims())
	bad := signJWT(t, "ed", jose.EdDSA, "ed", with(goodClaims(), "exp", time.Now().Unix()-5))
	jsonBody := `{"_ID_TOKEN":"` + it + `","x":1}`
	formBody := "a=b&_id_token=" + it
	for _, tt := range []struct {
		name string
		r    jwtReq
		want int
	}{
		{"json body", jwtReq{method: "POST", ctype: "application/json", body: jsonBody, header: bearer(at)}, 200},
		{"form body", jwtReq{method: "PUT", ctype: "application/x-www-form-urlencoded", body: formBody, header: bearer(at)}, 200},
		{"body token missing", jwtReq{method: "POST", ctype: "application/json", body: `{"x":1}`, header: bearer(at)}, 401},
		{"header token missing", jwtReq{method: "POST", ctype: "application/json", body: jsonBody}, 401},
		{"GET has no body token", jwtReq{method: "GET", ctype: "application/json", body: jsonBody, header: bearer(at)}, 401},
		{"other content type", jwtReq{method: "POST", ctype: "text/plain", body: jsonBody, header: bearer(at)}, 401},
		{"body token expired", jwtReq{method: "PATCH", ctype: "application/json", body: `{"_id_token":"` + bad + `"}`, header: bearer(at)}, 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body, res, reached := doJWT(t, px, hits, tt.r)
			if status != tt.want {
				t.Fatalf("status %d, want %d (%s)", status, tt.want, res.Header.Get("X-Jwt-Error"))
			}
			if tt.want == 200 && (!reached || body != "upstream:"+tt.r.body) {
				t.Errorf("upstream reached=%v, body %q: the upstream must get the body unchanged", reached, body)
			}
		})
	}
}

// A new kid in the JWKS is picked up by one refetch, no sooner than
// jwksMinRefetch after the previous one; the keys are refetched after jwksTTL.
func TestJWTValidationKeyRotation(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	jwksNow = func() time.Time { return time.Unix(0, clock.Load()) }
	t.Cleanup(func() { jwksNow = time.Now })
	advance := func(d time.Duration) { clock.Add(int64(d)) }

	js := newJWKSServer(t, "rsa")
	px, hits := jwtProxy(t, jwtPolicy(js.URL, ""))
	old := signJWT(t, "rsa", jose.RS256, "rsa", goodClaims())
	rotated := signJWT(t, "ec256", jose.ES256, "ec256", goodClaims())
	step := func(name, tok string, want int, fetches int64) {
		t.Helper()
		status, _, res, _ := doJWT(t, px, hits, jwtReq{header: bearer(tok)})
		if status != want {
			t.Errorf("%s: status %d, want %d (%s)", name, status, want, res.Header.Get("X-Jwt-Error"))
		}
		if got := js.fetches.Load(); got != fetches {
			t.Errorf("%s: %d JWKS fetches, want %d", name, got, fetches)
		}
	}
	step("first request fetches", old, 200, 1)
	step("cached", old, 200, 1)
	step("unknown kid right after a fetch: no refetch yet", rotated, 401, 1)
	js.set(func(js *jwksServer) { js.kids = []string{"rsa", "ec256"} })
	advance(2 * time.Second)
	step("still within jwksMinRefetch", rotated, 401, 1)
	advance(jwksMinRefetch)
	step("unknown kid refetches once", rotated, 200, 2)
	step("new key now cached", rotated, 200, 2)
	step("unknown kid again within the window", signJWT(t, "rsa2", jose.RS256, "rsa2", goodClaims()), 401, 2)
	advance(jwksMinRefetch + time.Second)
	for i := 0; i < 5; i++ {
		step("a flood of unknown kids refetches at most once", signJWT(t, "rsa2", jose.RS256, "rsa2", goodClaims()), 401, 3)
	}
	js.set(func(js *jwksServer) { js.kids = []string{"ec256"} })
	advance(jwksTTL + time.Second)
	step("after the TTL the set is refetched: the retired key is gone", old, 401, 4)
	step("the current key works", rotated, 200, 4)
	js.set(func(js *jwksServer) { js.kids = []string{"ec256", "ed"} })
	advance(jwksMinRefetch + time.Second)
	noKid := signJWT(t, "ed", jose.EdDSA, "", goodClaims())
	step("a token without kid from a new key: one refetch", noKid, 200, 5)
	step("then cached", noKid, 200, 5)
}

// A JWKS outage never panics: without keys the request is refused with 401;
// with keys fetched before, they keep working; retries are spaced.
func TestJWTValidationJWKSOutage(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	jwksNow = func() time.Time { return time.Unix(0, clock.Load()) }
	t.Cleanup(func() { jwksNow = time.Now })

	tok := func() string { return signJWT(t, "rsa", jose.RS256, "rsa", goodClaims()) }
	for _, tt := range []struct {
		name string
		set  func(js *jwksServer)
	}{
		{"500", func(js *jwksServer) { js.status = 500 }},
		{"not JSON", func(js *jwksServer) { js.body = "<html>" }},
		{"no keys", func(js *jwksServer) { js.body = `{"keys":[]}` }},
		{"only a symmetric key", func(js *jwksServer) { js.body = `{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"rsa"}]}` }},
		{"too large", func(js *jwksServer) { js.body = `{"keys":[],"pad":"` + strings.Repeat("x", jwksMaxBytes) + `"}` }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			js := newJWKSServer(t, "rsa")
			js.set(tt.set)
			px, hits := jwtProxy(t, jwtPolicy(js.URL, ""))
			for i := 0; i < 3; i++ {
				status, _, res, reached := doJWT(t, px, hits, jwtReq{header: bearer(tok())})
				if status != 401 || reached || res.Header.Get("X-Jwt-Error") != "jwks_unavailable" {
					t.Fatalf("status %d reached %v error %q, want 401 jwks_unavailable", status, reached, res.Header.Get("X-Jwt-Error"))
				}
			}
			if n := js.fetches.Load(); n != 1 {
				t.Errorf("%d fetches within jwksMinRefetch, want 1", n)
			}
			// The JWKS comes back: the next attempt after the backoff works.
			js.set(func(js *jwksServer) { js.status, js.body = 200, "" })
			clock.Add(int64(jwksMinRefetch + time.Second))
			if status, _, _, _ := doJWT(t, px, hits, jwtReq{header: bearer(tok())}); status != 200 {
				t.Fatalf("after recovery: status %d", status)
			}
			// It goes down again after the TTL: the keys fetched before are served.
			js.set(tt.set)
			clock.Add(int64(jwksTTL + time.Second))
			if status, _, _, _ := doJWT(t, px, hits, jwtReq{header: bearer(tok())}); status != 200 {
				t.Fatalf("stale keys during an outage: status %d", status)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		js := newJWKSServer(t, "rsa")
		u := js.URL
		js.Close()
		px, hits := jwtProxy(t, jwtPolicy(u, ""))
		status, _, res, _ := doJWT(t, px, hits, jwtReq{header: bearer(tok())})
		if status != 401 || res.Header.Get("X-Jwt-Error") != "jwks_unavailable" {
			t.Fatalf("status %d error %q", status, res.Header.Get("X-Jwt-Error"))
		}
	})
}

// A JWKS URL may come from interpolation; its keys are cached per URL.
func TestJWTValidationInterpolated(t *testing.T) {
	js := newJWKSServer(t, "rsa")
	pol := strings.Replace(jwtPolicy("${'"+js.URL+"' + '/keys'}", ""), `{value: "https://other.test"}`, `{value: "${'https://other' + '.test'}"}`, 1)
	px, hits := jwtProxy(t, pol)
	for i := 0; i < 3; i++ {
		status, _, res, _ := doJWT(t, px, hits, jwtReq{header: bearer(signJWT(t, "rsa", jose.RS256, "rsa", with(goodClaims(), "iss", "https://other.test")))})
		if status != 200 {
			t.Fatalf("status %d (%s)", status, res.Header.Get("X-Jwt-Error"))
		}
	}
	if n := js.fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1 (cached)", n)
	}
}

func TestJWTValidationNoAudienceConfigured(t *testing.T) {
	js := newJWKSServer(t, "rsa")
	pol := strings.Replace(jwtPolicy(js.URL, ""), "          audience:\n            allow_list: [{value: \"urn:sluice:api\"}]\n", "", 1)
	px, hits := jwtProxy(t, pol)
	for _, aud := range []any{nil, "anything"} {
		if status, _, _, _ := doJWT(t, px, hits, jwtReq{header: bearer(signJWT(t, "rsa", jose.RS256, "rsa", with(goodClaims(), "aud", aud)))}); status != 200 {
			t.Errorf("aud %v: status %d; without audience configured aud is not checked", aud, status)
		}
	}
}

func TestJWTValidationConfigErrors(t *testing.T) {
	const (
		iss  = `issuer: {allow_list: [{value: "https://i/"}]}`
		tok  = `http: {tokens: [{type: jwt, method: header, name: Authorization, prefix: "Bearer "}]}`
		jws  = `jws: {allowed_algorithms: [RS256], keys: {sources: {additional_jkus: ["https://i/jwks"]}}}`
		line = "jwt.yaml:5:"
	)
	join := func(parts ...string) string { return "{" + strings.Join(parts, ", ") + "}" }
	tests := []struct{ name, config, want string }{
		{"valid, keys as ngrok's reference lists them", join(iss, tok, `jws: {allowed_algorithms: [RS256], keys: [{identification: [{token_claims: [kid]}], sources: [{additional_jkus: ["https://i/jwks"]}]}]}`), ""},
		{"valid, http JWKS on loopback", join(iss, tok, `jws: {allowed_algorithms: [EdDSA], keys: {sources: {additional_jkus: ["http://127.0.0.1:8080/jwks", "http://localhost/k", "http://[::1]/k"]}}}`), ""},
		{"no issuer", join(tok, jws), line + "11: jwt-validation: issuer.allow_list: at least one issuer is required"},
		{"empty issuer list", join(`issuer: {allow_list: []}`, tok, jws), line + "33: jwt-validation: issuer.allow_list: at least one"},
		{"empty issuer value", join(`issuer: {allow_list: [{value: ""}]}`, tok, jws), line + "42: jwt-validation: issuer.allow_list[0].value: an issuer is required"},
		{"empty audience list", join(iss, `audience: {allow_list: []}`, tok, jws), "audience.allow_list: at least one audience is required"},
		{"no tokens", join(iss, jws), "http.tokens: at least one token is required"},
		{"bad token type", join(iss, `http: {tokens: [{type: saml, method: header, name: A}]}`, jws), line + "82: jwt-validation: http.tokens[0].type: \"saml\" is not one of"},
		{"query method", join(iss, `http: {tokens: [{type: jwt, method: query, name: t}]}`, jws), "http.tokens[0].method: \"query\" is not header or body"},
		{"no token name", join(iss, `http: {tokens: [{type: jwt, method: header}]}`, jws), "http.tokens[0].name: the header or body field name is required"},
		{"unknown token field", join(iss, `http: {tokens: [{type: jwt, method: header, name: A, where: x}]}`, jws), `unknown field "where"`},
		{"no jws", join(iss, tok), "jws: allowed_algorithms and keys are required"},
		{"no algorithms", join(iss, tok, `jws: {allowed_algorithms: [], keys: {sources: {additional_jkus: ["https://i/"]}}}`), "jws.allowed_algorithms: at least one algorithm is required"},
		{"alg none", join(iss, tok, `jws: {allowed_algorithms: [RS256, none], keys: {sources: {additional_jkus: ["https://i/"]}}}`), line + "180: jwt-validation: jws.allowed_algorithms[1]: \"none\" is not allowed (unsigned tokens are insecure"},
		{"HS256", join(iss, tok, `jws: {allowed_algorithms: [HS256], keys: {sources: {additional_jkus: ["https://i/"]}}}`), `jws.allowed_algorithms[0]: "HS256" is not allowed (HMAC algorithms need a shared secret`},
		{"unknown alg", join(iss, tok, `jws: {allowed_algorithms: [RS1], keys: {sources: {additional_jkus: ["https://i/"]}}}`), `"RS1" is not allowed (supported: RS256`},
		{"no keys", join(iss, tok, `jws: {allowed_algorithms: [RS256]}`), "jws.keys: sources.additional_jkus is required"},
		{"no sources", join(iss, tok, `jws: {allowed_algorithms: [RS256], keys: {identification: [{token_claims: [kid]}]}}`), "jws.keys[0].sources.additional_jkus: at least one JWKS URL is required"},
		{"empty jkus", join(iss, tok, `jws: {allowed_algorithms: [RS256], keys: {sources: {additional_jkus: []}}}`), "additional_jkus: at least one JWKS URL is required"},
		{"http JWKS not on loopback", join(iss, tok, `jws: {allowed_algorithms: [RS256], keys: {sources: {additional_jkus: ["http://idp.example.com/jwks"]}}}`), line + "216: jwt-validation: jws.keys[0].sources.additional_jkus[0]: \"http://idp.example.com/jwks\": keys must be fetched over https://"},
		{"not a URL", join(iss, tok, `jws: {allowed_algorithms: [RS256], keys: {sources: {additional_jkus: ["/jwks"]}}}`), `"/jwks": want an https:// URL`},
		{"unsupported identification claim", join(iss, tok, `jws: {allowed_algorithms: [RS256], keys: {identification: [{token_claims: [x5t]}], sources: {additional_jkus: ["https://i/"]}}}`), `token_claims: "x5t" is not supported (only kid)`},
		{"unknown source field", join(iss, tok, `jws: {allowed_algorithms: [RS256], keys: {sources: {jkus: ["https://i/"]}}}`), `unknown field "jkus"`},
		{"bad CEL in issuer", join(`issuer: {allow_list: [{value: "${nosuch.var}"}]}`, tok, jws), `CEL: unknown variable "nosuch.var"`},
		{"enforce is not an ngrok field here", join(iss, tok, jws, "enforce: false"), `unknown field "enforce"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := "on_http_request:\n  - actions:\n      - type: jwt-validation\n        config:\n          " + tt.config + "\n"
			_, err := policy.Parse("jwt.yaml", []byte(pol))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, tt.want)
		})
	}
	for _, ph := range []string{"on_tcp_connect", "on_http_response"} {
		pol := fmt.Sprintf("%s:\n  - actions:\n      - type: jwt-validation\n        config: {%s, %s, %s}\n", ph, iss, tok, jws)
		_, err := policy.Parse("jwt.yaml", []byte(pol))
		wantErr(t, err, "jwt.yaml:3:15", `"jwt-validation" is not allowed in `+ph)
	}
}
