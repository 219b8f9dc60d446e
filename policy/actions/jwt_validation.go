package actions

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/sluicehq/sluice/policy"
	"go.yaml.in/yaml/v3"
)

// JWTValidation is the `jwt-validation` action: it lets a request through
// only when every configured token is present, is a compact JWS signed with
// an allowed algorithm by a key from the configured JWKS URLs, is within its
// validity period, names an allowed issuer and (when configured) an allowed
// audience. Everything else is answered 401 Unauthorized.
//
//	actions:
//	  - type: jwt-validation
//	    config:
//	      issuer:
//	        allow_list: [{value: https://example.com/issuer}]
//	      audience:
//	        allow_list: [{value: "urn:example:api"}]
//	      http:
//	        tokens:
//	          - {type: jwt, method: header, name: Authorization, prefix: "Bearer "}
//	      jws:
//	        allowed_algorithms: [RS256, ES256]
//	        keys:
//	          sources:
//	            additional_jkus: [https://example.com/issuer/jku]
//
// issuer.allow_list[*].value (${}, at least one, required): the `iss` claim
// must equal one of them exactly.
//
// audience.allow_list[*].value (optional): when given, the `aud` claim (a
// string or a list) must contain one of them exactly.
//
// http.tokens (1-10, required): where each token is read. type is one of
// ngrok's hints (id_token, access_token, at+jwt, it+jwt, plain, jwt);
// method is header or body (a field of a POST/PUT/PATCH body in JSON or
// application/x-www-form-urlencoded); name (${}) is the header or field,
// matched case-insensitively; prefix (${}) is stripped, compared
// case-insensitively (so "Bearer " also accepts "bearer "). All tokens must
// be present and valid.
//
// jws.allowed_algorithms (required): RS256/384/512, PS256/384/512,
// ES256/384/512, EdDSA; "none" and HMAC algorithms are refused at load.
// jws.keys (an object, or a list of them as ngrok's reference writes it):
// sources.additional_jkus (${}, required) lists JWKS URLs, https:// (http://
// only to a loopback host); identification.token_claims may only be [kid].
//
// Keys are fetched on first use and kept 15 minutes (ngrok refreshes
// "roughly every 15 minutes"); a token whose `kid` is not among them
// refetches at most once per jwksMinRefetch. Fetches time out after
// jwksTimeout, read at most jwksMaxBytes, and a failed fetch is retried no
// sooner than jwksMinRefetch later, serving the keys last fetched meanwhile.
// When no key can be had the request is refused with 401 like any token
// that cannot be verified; that is not an action error, so on_error:
// continue cannot let it through. (An interpolation that fails to evaluate
// is an action error, as in basic-auth.)
//
// exp, nbf and iat are checked when present, without leeway (ngrok
// documents none). Result variables: actions.ngrok.jwt_validation.tokens
// (list of {header, payload, signature, location, location_property,
// verified}) and .error.code / .error.message when the request is refused.
type JWTValidation struct {
	Issuer   *jwtAllowList `yaml:"issuer"`
	Audience *jwtAllowList `yaml:"audience"`
	HTTP     *struct {
		Tokens []jwtTokenConfig `yaml:"tokens"`
	} `yaml:"http"`
	JWS *struct {
		AllowedAlgorithms []string  `yaml:"allowed_algorithms"`
		Keys              yaml.Node `yaml:"keys"`
	} `yaml:"jws"`

	issuers   []*policy.Template
	audiences []string
	tokens    []jwtToken
	algs      []jose.SignatureAlgorithm
	jkus      []*policy.Template
	caches    *jwksCaches
	now       func() time.Time
}

type jwtAllowList struct {
	AllowList []struct {
		Value policy.Template `yaml:"value"`
	} `yaml:"allow_list"`
}

type jwtTokenConfig struct {
	Type   string           `yaml:"type"`
	Method string           `yaml:"method"`
	Name   *policy.Template `yaml:"name"`
	Prefix *policy.Template `yaml:"prefix"`
}

type jwtToken struct {
	method       string // "header" or "body"
	name, prefix *policy.Template
}

type jwtKeysConfig struct {
	Identification yaml.Node `yaml:"identification"`
	Sources        yaml.Node `yaml:"sources"`
}

type jwtSourceConfig struct {
	AdditionalJKUs []policy.Template `yaml:"additional_jkus"`
}

type jwtIdentificationConfig struct {
	TokenClaims []string `yaml:"token_claims"`
}

// Limits. ngrok documents the 15 minute refresh; the rest are sluice's.
const (
	jwtMaxTokens     = 10
	jwtMaxTokenBytes = 64 << 10
	jwtMaxBodyBytes  = 1 << 20
	jwksTTL          = 15 * time.Minute
	jwksMinRefetch   = 5 * time.Second
	jwksMaxStale     = 24 * time.Hour
	jwksTimeout      = 5 * time.Second
	jwksMaxBytes     = 1 << 20
	jwksMaxDynamic   = 32 // JWKS URLs that come from interpolation, cached at once
)

var jwtAlgorithms = map[string]jose.SignatureAlgorithm{
	"RS256": jose.RS256, "RS384": jose.RS384, "RS512": jose.RS512,
	"PS256": jose.PS256, "PS384": jose.PS384, "PS512": jose.PS512,
	"ES256": jose.ES256, "ES384": jose.ES384, "ES512": jose.ES512,
	"EdDSA": jose.EdDSA,
}

var jwtTokenTypes = map[string]bool{"id_token": true, "access_token": true, "at+jwt": true, "it+jwt": true, "plain": true, "jwt": true}

func newJWTValidation(c *policy.Config) (policy.Action, error) {
	a := &JWTValidation{now: time.Now}
	if err := c.Decode(a); err != nil {
		return nil, err
	}

	// issuer: required, at least one value.
	issNode := fieldNode(fieldNode(c.Node, "issuer"), "allow_list")
	if a.Issuer == nil || len(a.Issuer.AllowList) == 0 {
		return nil, c.Errorf(issNode, "issuer.allow_list: at least one issuer is required")
	}
	for i := range a.Issuer.AllowList {
		t := &a.Issuer.AllowList[i].Value
		if t.Raw() == "" {
			return nil, c.Errorf(fieldNode(seqItem(issNode, i), "value"), "issuer.allow_list[%d].value: an issuer is required", i)
		}
		a.issuers = append(a.issuers, t)
	}

	// audience: optional; when present, at least one value.
	if a.Audience != nil {
		audNode := fieldNode(fieldNode(c.Node, "audience"), "allow_list")
		if len(a.Audience.AllowList) == 0 {
			return nil, c.Errorf(audNode, "audience.allow_list: at least one audience is required when audience is set")
		}
		for i := range a.Audience.AllowList {
			v, ok := a.Audience.AllowList[i].Value.Static()
			if !ok {
				return nil, c.Errorf(fieldNode(seqItem(audNode, i), "value"), "audience.allow_list[%d].value: ${} is not supported here", i)
			}
			if v == "" {
				return nil, c.Errorf(fieldNode(seqItem(audNode, i), "value"), "audience.allow_list[%d].value: an audience is required", i)
			}
			a.audiences = append(a.audiences, v)
		}
	}

	// http.tokens
	if a.HTTP == nil || len(a.HTTP.Tokens) == 0 {
		return nil, c.Errorf(fieldNode(fieldNode(c.Node, "http"), "tokens"), "http.tokens: at least one token is required")
	}
	tokNode := fieldNode(fieldNode(c.Node, "http"), "tokens")
	if len(a.HTTP.Tokens) > jwtMaxTokens {
		return nil, c.Errorf(tokNode, "http.tokens: at most %d tokens are allowed, got %d", jwtMaxTokens, len(a.HTTP.Tokens))
	}
	for i, tc := range a.HTTP.Tokens {
		n := seqItem(tokNode, i)
		if !jwtTokenTypes[tc.Type] {
			return nil, c.Errorf(fieldNode(n, "type"), "http.tokens[%d].type: %q is not one of id_token, access_token, at+jwt, it+jwt, plain, jwt", i, tc.Type)
		}
		if tc.Method != "header" && tc.Method != "body" {
			return nil, c.Errorf(fieldNode(n, "method"), "http.tokens[%d].method: %q is not header or body (ngrok does not read tokens from the query)", i, tc.Method)
		}
		if tc.Name == nil || tc.Name.Raw() == "" {
			return nil, c.Errorf(fieldNode(n, "name"), "http.tokens[%d].name: the header or body field name is required", i)
		}
		a.tokens = append(a.tokens, jwtToken{method: tc.Method, name: tc.Name, prefix: tc.Prefix})
	}

	// jws
	if a.JWS == nil {
		return nil, c.Errorf(fieldNode(c.Node, "jws"), "jws: allowed_algorithms and keys are required")
	}
	jwsNode := fieldNode(c.Node, "jws")
	algNode := fieldNode(jwsNode, "allowed_algorithms")
	if len(a.JWS.AllowedAlgorithms) == 0 {
		return nil, c.Errorf(algNode, "jws.allowed_algorithms: at least one algorithm is required")
	}
	for i, name := range a.JWS.AllowedAlgorithms {
		alg, ok := jwtAlgorithms[name]
		if !ok {
			why := "supported: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA"
			if strings.EqualFold(name, "none") {
				why = "unsigned tokens are insecure and never accepted"
			} else if strings.HasPrefix(strings.ToUpper(name), "HS") {
				why = "HMAC algorithms need a shared secret, not a JWKS of public keys; " + why
			}
			return nil, c.Errorf(seqItem(algNode, i), "jws.allowed_algorithms[%d]: %q is not allowed (%s)", i, name, why)
		}
		a.algs = append(a.algs, alg)
	}
	if err := a.compileKeys(c, fieldNode(jwsNode, "keys")); err != nil {
		return nil, err
	}
	a.caches = newJWKSCaches()
	for _, t := range a.jkus {
		if u, ok := t.Static(); ok {
			a.caches.static[u] = newJWKSCache(u)
		}
	}
	a.Issuer, a.Audience, a.HTTP, a.JWS = nil, nil, nil, nil
	return a, nil
}

// compileKeys reads jws.keys, written as one object (ngrok's examples) or a
// list of objects (ngrok's reference table).
func (a *JWTValidation) compileKeys(c *policy.Config, n *yaml.Node) error {
	if !hasField(fieldNode(c.Node, "jws"), "keys") || n.Kind == 0 || isNullNode(n) {
		return c.Errorf(n, "jws.keys: sources.additional_jkus is required")
	}
	for i, kn := range objectOrList(n) {
		var k jwtKeysConfig
		if err := subDecode(c, kn, &k); err != nil {
			return err
		}
		if k.Identification.Kind != 0 && !isNullNode(&k.Identification) {
			for _, in := range objectOrList(&k.Identification) {
				var id jwtIdentificationConfig
				if err := subDecode(c, in, &id); err != nil {
					return err
				}
				for j, claim := range id.TokenClaims {
					if claim != "kid" {
						return c.Errorf(seqItem(fieldNode(in, "token_claims"), j), "jws.keys[%d].identification: token_claims: %q is not supported (only kid)", i, claim)
					}
				}
			}
		}
		if k.Sources.Kind == 0 || isNullNode(&k.Sources) {
			return c.Errorf(kn, "jws.keys[%d].sources.additional_jkus: at least one JWKS URL is required", i)
		}
		for _, sn := range objectOrList(&k.Sources) {
			var src jwtSourceConfig
			if err := subDecode(c, sn, &src); err != nil {
				return err
			}
			jn := fieldNode(sn, "additional_jkus")
			if len(src.AdditionalJKUs) == 0 {
				return c.Errorf(jn, "jws.keys[%d].sources.additional_jkus: at least one JWKS URL is required", i)
			}
			for j := range src.AdditionalJKUs {
				t := &src.AdditionalJKUs[j]
				if u, ok := t.Static(); ok {
					if err := checkJWKSURL(u); err != nil {
						return c.Errorf(seqItem(jn, j), "jws.keys[%d].sources.additional_jkus[%d]: %v", i, j, err)
					}
				}
				a.jkus = append(a.jkus, t)
			}
		}
	}
	if len(a.jkus) == 0 {
		return c.Errorf(n, "jws.keys: sources.additional_jkus is required")
	}
	return nil
}

// checkJWKSURL allows https:// URLs, and http:// only to a loopback host (a
// local identity provider, tests). A URL that does not parse otherwise (a
// placeholder such as https://<YOUR-AUTH-PROVIDER>/) fails when fetched.
func checkJWKSURL(raw string) error {
	switch {
	case len(raw) > 8 && strings.EqualFold(raw[:8], "https://"):
		return nil
	case len(raw) > 7 && strings.EqualFold(raw[:7], "http://"):
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("%q: %v", raw, err)
		}
		if !loopbackHost(u.Hostname()) {
			return fmt.Errorf("%q: keys must be fetched over https:// (http:// is allowed only to a loopback host)", raw)
		}
		return nil
	}
	return fmt.Errorf("%q: want an https:// URL", raw)
}

func loopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func isNullNode(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// objectOrList returns the items of a list node, or the node itself.
func objectOrList(n *yaml.Node) []*yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.SequenceNode {
		return n.Content
	}
	return []*yaml.Node{n}
}

// seqItem returns item i of a list node, or n itself.
func seqItem(n *yaml.Node, i int) *yaml.Node {
	if n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return n.Content[i]
	}
	return n
}

// subDecode strictly decodes n (a part of this action's config) into v.
func subDecode(c *policy.Config, n *yaml.Node, v any) error {
	sub := *c
	sub.Node = n
	return sub.Decode(v)
}

// jwtFailure is why a request was refused: error.code and error.message.
type jwtFailure struct{ code, msg string }

func (f *jwtFailure) Error() string { return f.code + ": " + f.msg }

func jwtFail(code, format string, args ...any) *jwtFailure {
	return &jwtFailure{code: code, msg: fmt.Sprintf(format, args...)}
}

// Run validates every configured token and answers 401 when one fails.
func (a *JWTValidation) Run(s *policy.State) error {
	if !httpPhase(s) {
		return nil
	}
	results := make([]any, 0, len(a.tokens))
	var fail *jwtFailure
	for i := range a.tokens {
		tok := &a.tokens[i]
		raw, name, f, err := a.extract(s, tok)
		if err != nil {
			return fmt.Errorf("http.tokens[%d]: %w", i, err)
		}
		if f != nil {
			fail = f
			break
		}
		res := map[string]any{"location": tok.method, "location_property": name, "verified": false}
		results = append(results, res)
		if fail, err = a.validate(s, raw, res); err != nil {
			return err
		}
		if fail != nil {
			break
		}
	}
	if s.WantsResults() {
		r := map[string]any{"tokens": results}
		if fail != nil {
			r["error"] = map[string]any{"code": fail.code, "message": fail.msg}
		}
		s.SetResult("jwt_validation", r)
	}
	if fail == nil {
		return nil
	}
	if s.Log != nil {
		s.Log.Debug("jwt-validation: request refused", "code", fail.code, "reason", fail.msg)
	}
	s.X.Res = respond(http.StatusUnauthorized, nil, "")
	return nil
}

// extract finds one token in the request. A missing token is a failure; an
// error (an interpolation that failed) is the action's error.
func (a *JWTValidation) extract(s *policy.State, tok *jwtToken) (raw, name string, fail *jwtFailure, err error) {
	if name, err = tok.name.Eval(s); err != nil {
		return "", "", nil, fmt.Errorf("name: %w", err)
	}
	prefix, err := tok.prefix.Eval(s)
	if err != nil {
		return "", name, nil, fmt.Errorf("prefix: %w", err)
	}
	var v string
	var found bool
	if tok.method == "header" {
		vs := s.X.Req.Header.Values(name)
		if len(vs) > 0 {
			v, found = vs[0], true
		}
	} else {
		v, found = bodyField(s, name)
	}
	if !found || v == "" {
		return "", name, jwtFail("missing_token", "no token in %s %q", tok.method, name), nil
	}
	if prefix != "" {
		if len(v) < len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
			return "", name, jwtFail("missing_token", "%s %q does not start with %q", tok.method, name, prefix), nil
		}
		v = v[len(prefix):]
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return "", name, jwtFail("missing_token", "no token in %s %q", tok.method, name), nil
	}
	if len(v) > jwtMaxTokenBytes {
		return "", name, jwtFail("malformed_token", "the token is longer than %d bytes", jwtMaxTokenBytes), nil
	}
	return v, name, nil, nil
}

// bodyField reads a top-level field of a JSON or form body (POST, PUT and
// PATCH only), matching the name case-insensitively. The body is buffered,
// at most jwtMaxBodyBytes of it, and handed on to the upstream unchanged.
func bodyField(s *policy.State, name string) (string, bool) {
	req := s.X.Req
	switch req.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return "", false
	}
	ct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if ct != "application/json" && ct != "application/x-www-form-urlencoded" {
		return "", false
	}
	if req.Body == nil || req.Body == http.NoBody {
		return "", false
	}
	orig := req.Body
	buf, err := io.ReadAll(io.LimitReader(orig, jwtMaxBodyBytes+1))
	req.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf), orig), orig}
	if err != nil || len(buf) > jwtMaxBodyBytes {
		return "", false
	}
	if ct == "application/json" {
		var m map[string]any
		if json.Unmarshal(buf, &m) != nil {
			return "", false
		}
		for k, v := range m {
			if strings.EqualFold(k, name) {
				str, ok := v.(string)
				return str, ok
			}
		}
		return "", false
	}
	vals, err := url.ParseQuery(string(buf))
	if err != nil {
		return "", false
	}
	for k, v := range vals {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0], true
		}
	}
	return "", false
}

// validate checks one token's signature and claims, filling res.
func (a *JWTValidation) validate(s *policy.State, raw string, res map[string]any) (*jwtFailure, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return jwtFail("malformed_token", "a JWT has 3 dot-separated parts, this one %d (encrypted tokens are not supported)", len(parts)), nil
	}
	res["signature"] = parts[2]
	var header map[string]any
	if b, err := b64url(parts[0]); err != nil || json.Unmarshal(b, &header) != nil || header == nil {
		return jwtFail("malformed_token", "the header is not base64url-encoded JSON"), nil
	}
	res["header"] = header
	var payload map[string]any
	if b, err := b64url(parts[1]); err == nil {
		json.Unmarshal(b, &payload)
	}
	if payload == nil {
		return jwtFail("malformed_token", "the payload is not base64url-encoded JSON"), nil
	}
	res["payload"] = payload

	alg, _ := header["alg"].(string)
	allowed := false
	for _, x := range a.algs {
		if string(x) == alg {
			allowed = true
		}
	}
	if !allowed {
		return jwtFail("algorithm_not_allowed", "alg %q is not in allowed_algorithms", alg), nil
	}
	jws, err := jose.ParseSignedCompact(raw, a.algs)
	if err != nil || len(jws.Signatures) != 1 {
		return jwtFail("malformed_token", "not a valid JWS: %v", err), nil
	}
	kid := jws.Signatures[0].Header.KeyID

	verified := false
	var lastFetchErr error
	for refetch := 0; refetch < 2 && !verified; refetch++ {
		keys, fetchErr, err := a.keys(s, refetch == 1)
		if err != nil {
			return nil, err
		}
		lastFetchErr = fetchErr
		candidates := 0
		for i := range keys {
			k := &keys[i]
			if kid != "" && k.KeyID != kid {
				continue
			}
			if (k.Algorithm != "" && k.Algorithm != alg) || (k.Use != "" && k.Use != "sig") || !k.IsPublic() {
				continue
			}
			candidates++
			if _, err := jws.Verify(k.Key); err == nil {
				verified = true
				break
			}
		}
		// A known kid whose key does not verify is a bad signature; without
		// a kid the signer may be a key added since: refetch first.
		if candidates > 0 && !verified && (kid != "" || refetch == 1) {
			return jwtFail("invalid_signature", "the signature does not verify with the key(s) for kid %q", kid), nil
		}
	}
	if !verified {
		if lastFetchErr != nil {
			return jwtFail("jwks_unavailable", "no signing keys: %v", lastFetchErr), nil
		}
		return jwtFail("unknown_key", "no key in the JWKS matches kid %q and alg %q", kid, alg), nil
	}

	// Claims: the payload was verified, so the map decoded above is it.
	now := a.now()
	if f := checkTime(payload, "exp", func(t time.Time) bool { return now.Before(t) }, "the token expired"); f != nil {
		return f, nil
	}
	if f := checkTime(payload, "nbf", func(t time.Time) bool { return !now.Before(t) }, "the token is not valid yet"); f != nil {
		return f, nil
	}
	if f := checkTime(payload, "iat", func(t time.Time) bool { return !now.Before(t) }, "the token was issued in the future"); f != nil {
		return f, nil
	}
	iss, _ := payload["iss"].(string)
	okIss := false
	for i, t := range a.issuers {
		want, err := t.Eval(s)
		if err != nil {
			return nil, fmt.Errorf("issuer.allow_list[%d].value: %w", i, err)
		}
		if iss == want && want != "" {
			okIss = true
			break
		}
	}
	if !okIss {
		return jwtFail("invalid_issuer", "iss %q is not allowed", iss), nil
	}
	if len(a.audiences) > 0 {
		var auds []string
		switch v := payload["aud"].(type) {
		case string:
			auds = []string{v}
		case []any:
			for _, x := range v {
				if str, ok := x.(string); ok {
					auds = append(auds, str)
				}
			}
		}
		okAud := false
		for _, got := range auds {
			for _, want := range a.audiences {
				if got == want {
					okAud = true
				}
			}
		}
		if !okAud {
			return jwtFail("invalid_audience", "aud %v contains none of the allowed audiences", payload["aud"]), nil
		}
	}
	res["verified"] = true
	return nil, nil
}

// checkTime checks a NumericDate claim when present: ok(t) must hold.
func checkTime(payload map[string]any, claim string, ok func(time.Time) bool, msg string) *jwtFailure {
	v, present := payload[claim]
	if !present {
		return nil
	}
	n, isNum := v.(float64)
	if !isNum {
		return jwtFail("invalid_claims", "%s is not a number", claim)
	}
	sec := int64(n)
	t := time.Unix(sec, int64((n-float64(sec))*1e9))
	if !ok(t) {
		code := map[string]string{"exp": "token_expired", "nbf": "token_not_yet_valid", "iat": "invalid_claims"}[claim]
		return jwtFail(code, "%s (%s %s)", msg, claim, t.UTC().Format(time.RFC3339))
	}
	return nil
}

func b64url(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// keys returns the union of the configured JWKS, fetching what is stale.
// force asks for a refetch (unknown kid), rate-limited per URL. fetchErr is
// the last fetch error of a source that has no keys at all.
func (a *JWTValidation) keys(s *policy.State, force bool) (keys []jose.JSONWebKey, fetchErr, err error) {
	ctx := context.Background()
	if s.X != nil && s.X.Ctx != nil {
		ctx = context.WithoutCancel(s.X.Ctx)
	}
	for i, t := range a.jkus {
		u, err := t.Eval(s)
		if err != nil {
			return nil, nil, fmt.Errorf("jws.keys.sources.additional_jkus[%d]: %w", i, err)
		}
		c, err := a.caches.get(u)
		if err != nil {
			fetchErr = err
			continue
		}
		ks, ferr := c.get(ctx, force, s)
		if ferr != nil && len(ks) == 0 {
			fetchErr = ferr
		}
		keys = append(keys, ks...)
	}
	return keys, fetchErr, nil
}

// jwksCaches holds one cache per JWKS URL: the literal ones made at load,
// interpolated ones on first use (at most jwksMaxDynamic at once).
type jwksCaches struct {
	static map[string]*jwksCache
	mu     sync.Mutex
	dyn    map[string]*jwksCache
}

func newJWKSCaches() *jwksCaches {
	return &jwksCaches{static: map[string]*jwksCache{}, dyn: map[string]*jwksCache{}}
}

func (cs *jwksCaches) get(u string) (*jwksCache, error) {
	if c := cs.static[u]; c != nil {
		return c, nil
	}
	if err := checkJWKSURL(u); err != nil {
		return nil, err
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.dyn[u]
	if c == nil {
		if len(cs.dyn) >= jwksMaxDynamic {
			for k := range cs.dyn { // drop one at random
				delete(cs.dyn, k)
				break
			}
		}
		c = newJWKSCache(u)
		cs.dyn[u] = c
	}
	return c, nil
}

// jwksCache is the keys of one JWKS URL.
type jwksCache struct {
	url     string
	fetchMu sync.Mutex // one fetch at a time

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time // last successful fetch
	tried   time.Time // last attempt
	lastErr error
}

func newJWKSCache(u string) *jwksCache { return &jwksCache{url: u} }

// jwksClient fetches key sets: bounded in time, redirects only to URLs
// checkJWKSURL allows. jwksNow is the cache's clock; tests replace it.
var (
	jwksClient = &http.Client{
		Timeout: jwksTimeout,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: jwksTimeout}).DialContext,
			TLSHandshakeTimeout:   jwksTimeout,
			ResponseHeaderTimeout: jwksTimeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       time.Minute,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			return checkJWKSURL(req.URL.String())
		},
	}
	jwksNow = time.Now
)

// get returns the cached keys, fetching them when there are none, when they
// are older than jwksTTL, or when force is set (at most once per
// jwksMinRefetch). A failed fetch keeps the previous keys (up to
// jwksMaxStale old) and is not retried before jwksMinRefetch.
func (c *jwksCache) get(ctx context.Context, force bool, s *policy.State) ([]jose.JSONWebKey, error) {
	now := jwksNow()
	c.mu.Lock()
	keys, fetched, tried, lastErr := c.keys, c.fetched, c.tried, c.lastErr
	c.mu.Unlock()
	fresh := keys != nil && now.Sub(fetched) < jwksTTL
	recent := now.Sub(tried) < jwksMinRefetch
	if (fresh && !force) || recent {
		if keys == nil && lastErr != nil {
			return nil, lastErr
		}
		return c.usable(keys, fetched, now), nil
	}

	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	c.mu.Lock()
	if c.tried.After(tried) { // another request fetched while we waited
		keys, fetched, lastErr = c.keys, c.fetched, c.lastErr
		c.mu.Unlock()
		if keys == nil && lastErr != nil {
			return nil, lastErr
		}
		return c.usable(keys, fetched, now), nil
	}
	c.tried = now
	c.mu.Unlock()

	set, err := fetchJWKS(ctx, c.url)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.lastErr = err
		if s != nil && s.Log != nil {
			s.Log.Warn("jwt-validation: fetching the JWKS failed", "url", c.url, "error", err)
		}
		if usable := c.usable(c.keys, c.fetched, now); usable != nil {
			return usable, nil
		}
		return nil, err
	}
	c.keys, c.fetched, c.lastErr = set, jwksNow(), nil
	return c.keys, nil
}

// usable returns keys unless they are older than jwksMaxStale.
func (c *jwksCache) usable(keys []jose.JSONWebKey, fetched, now time.Time) []jose.JSONWebKey {
	if keys == nil || now.Sub(fetched) > jwksMaxStale {
		return nil
	}
	return keys
}

func fetchJWKS(ctx context.Context, u string) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	res, err := jwksClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(res.Body, 4<<10))
		return nil, fmt.Errorf("GET %s: status %d", u, res.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %v", u, err)
	}
	if len(b) > jwksMaxBytes {
		return nil, fmt.Errorf("GET %s: the key set is larger than %d bytes", u, jwksMaxBytes)
	}
	// Keys are decoded one by one, so that one key of an unsupported type
	// does not hide the others.
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("GET %s: not a JWKS: %v", u, err)
	}
	keys := make([]jose.JSONWebKey, 0, len(raw.Keys))
	for _, r := range raw.Keys {
		var k jose.JSONWebKey
		if k.UnmarshalJSON(r) == nil && k.IsPublic() {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("GET %s: the key set has no usable public key", u)
	}
	return keys, nil
}

func init() {
	policy.Register(policy.Spec{
		Type:   "jwt-validation",
		Phases: []policy.Phase{policy.OnHTTPRequest},
		New:    newJWTValidation,
	})
}

var _ policy.Action = (*JWTValidation)(nil)
