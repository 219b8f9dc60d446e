package e2e

// jwt-validation through the real listener: a token signed by a key of a
// JWKS served on 127.0.0.1 reaches the upstream, everything else is 401, and
// the claims are readable by the next action.

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

type jwtSigner struct {
	alg jose.SignatureAlgorithm
	kid string
	key any
}

func (s jwtSigner) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", s.kid)
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: s.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	obj, err := sig.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestJWTValidation(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	es := jwtSigner{jose.ES256, "ec-1", ec}
	eddsa := jwtSigner{jose.EdDSA, "ed-1", ed}
	forged := jwtSigner{jose.ES256, "ec-1", other}
	unknown := jwtSigner{jose.ES256, "ec-9", other}

	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: ec.Public(), KeyID: "ec-1", Algorithm: "ES256", Use: "sig"},
			{Key: ed.Public(), KeyID: "ed-1", Use: "sig"},
		}})
	}))
	t.Cleanup(jwks.Close)

	now := time.Now().Unix()
	claims := func(kv ...any) map[string]any {
		c := map[string]any{"iss": "https://auth.test/", "aud": "https://app.test", "sub": "alice", "iat": now - 5, "exp": now + 600}
		for i := 0; i+1 < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	pol := `
on_http_request:
  - actions:
      - type: jwt-validation
        config:
          issuer:
            allow_list:
              - value: https://auth.test/
          audience:
            allow_list:
              - value: https://app.test
          http:
            tokens:
              - type: jwt
                method: header
                name: Authorization
                prefix: 'Bearer '
          jws:
            allowed_algorithms: [ES256, EdDSA]
            keys:
              sources:
                additional_jkus:
                  - ` + jwks.URL + `/.well-known/jwks.json
`
	auth := func(tok string) request { return request{Header: []string{"Authorization", "Bearer " + tok}} }
	refused := expect{Status: 401, NoUpstream: true, Body: str("")}
	good := es.sign(t, claims())
	runActionCases(t, []actionCase{
		{name: "no token: 401", policy: pol, want: refused},
		{name: "valid ES256 token reaches the upstream with the header", policy: pol, req: auth(good),
			want: expect{Status: 200, Upstream: true, UpHeaders: hdr("authorization", "Bearer "+good)}},
		{name: "valid EdDSA token", policy: pol, req: auth(eddsa.sign(t, claims())), want: expect{Status: 200, Upstream: true}},
		{name: "forged signature", policy: pol, req: auth(forged.sign(t, claims())), want: refused},
		{name: "unknown kid", policy: pol, req: auth(unknown.sign(t, claims())), want: refused},
		{name: "expired", policy: pol, req: auth(es.sign(t, claims("exp", now-60))), want: refused},
		{name: "not yet valid", policy: pol, req: auth(es.sign(t, claims("nbf", now+60))), want: refused},
		{name: "issuer without its trailing slash", policy: pol, req: auth(es.sign(t, claims("iss", "https://auth.test"))), want: refused},
		{name: "other audience", policy: pol, req: auth(es.sign(t, claims("aud", "https://evil.test"))), want: refused},
		{name: "malformed", policy: pol, req: auth("not-a-jwt"), want: refused},
		{name: "claims and error code as result variables", policy: pol + `
      - type: add-headers
        config:
          headers:
            x-user: ${actions.ngrok.jwt_validation.tokens[0].payload.sub}
on_http_response:
  - expressions: ['has(actions.ngrok.jwt_validation.error)']
    actions:
      - type: add-headers
        config:
          headers:
            x-jwt-error: ${actions.ngrok.jwt_validation.error.code}
`, req: auth(good), want: expect{Status: 200, Upstream: true, UpHeaders: hdr("x-user", "alice"), Absent: []string{"x-jwt-error"}}},
		{name: "error code of a refused token", policy: pol + `
on_http_response:
  - expressions: ['has(actions.ngrok.jwt_validation.error)']
    actions:
      - type: add-headers
        config:
          headers:
            x-jwt-error: ${actions.ngrok.jwt_validation.error.code}
`, req: auth(es.sign(t, claims("exp", now-60))), want: expect{Status: 401, NoUpstream: true, Headers: hdr("x-jwt-error", "token_expired")}},
	})
}

// A JWKS that is down: 401, the upstream is not contacted, nothing panics.
func TestJWTValidationJWKSDown(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(jwks.Close)
	tok := jwtSigner{jose.ES256, "k", ec}.sign(t, map[string]any{"iss": "https://auth.test/", "exp": time.Now().Unix() + 60})
	pol := `
on_http_request:
  - actions:
      - type: jwt-validation
        config:
          issuer: {allow_list: [{value: "https://auth.test/"}]}
          http: {tokens: [{type: jwt, method: header, name: Authorization, prefix: "Bearer "}]}
          jws: {allowed_algorithms: [ES256], keys: {sources: {additional_jkus: ["` + jwks.URL + `"]}}}
`
	runActionCases(t, []actionCase{{name: "JWKS 503", policy: pol,
		req: request{Header: []string{"Authorization", "Bearer " + tok}}, want: expect{Status: 401, NoUpstream: true}}})
}

// Config errors are reported at load with file:line:col.
func TestJWTValidationLoadErrors(t *testing.T) {
	head := "on_http_request:\n  - actions:\n      - type: jwt-validation\n        config:\n"
	okIss := "          issuer: {allow_list: [{value: https://a/}]}\n"
	okTok := "          http: {tokens: [{type: jwt, method: header, name: Authorization}]}\n"
	for src, want := range map[string]string{
		head + okIss + okTok + "          jws: {allowed_algorithms: [none], keys: {sources: {additional_jkus: [https://a/k]}}}\n": `p.yaml:7:38: jwt-validation: jws.allowed_algorithms[0]: "none" is not allowed`,
		head + okIss + okTok + "          jws: {allowed_algorithms: [RS256], keys: {sources: {additional_jkus: [http://a/k]}}}\n": `p.yaml:7:81: jwt-validation: jws.keys[0].sources.additional_jkus[0]: "http://a/k": keys must be fetched over https://`,
		head + okTok + "          jws: {allowed_algorithms: [RS256], keys: {sources: {additional_jkus: [https://a/k]}}}\n":        `p.yaml:5:11: jwt-validation: issuer.allow_list: at least one issuer is required`,
		strings.Replace(head, "on_http_request", "on_http_response", 1) + okIss + okTok:                                           `p.yaml:3:15: action "jwt-validation" is not allowed in on_http_response`,
	} {
		err := loadPolicy(t, "p.yaml", src)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want one containing %q", err, want)
		}
	}
}
