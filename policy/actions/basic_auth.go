package actions

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/sluicehq/sluice/policy"
	"go.yaml.in/yaml/v3"
)

// BasicAuth is the `basic-auth` action: it lets a request through only when
// its Authorization header carries one of the configured username:password
// pairs (HTTP Basic authentication, RFC 7617), and answers everything else
// with 401 Unauthorized and a WWW-Authenticate challenge.
//
//	actions:
//	  - type: basic-auth
//	    config:
//	      realm: sample-realm
//	      credentials: ["user:password1", "admin:password2"]
//	      enforce: true
//
// credentials (list of 1-10 "username:password" strings, required; ${}
// interpolation allowed): the first ':' separates username and password;
// the password must be 8-128 characters. An interpolation may be the
// username, the password, or the whole credential, but may not span the
// ':' (so the ':' must be literal unless the whole entry is one ${expr}).
// Static entries are checked at load, interpolated ones per request.
//
// realm (string, default "ngrok"): the realm of the challenge, at most 128
// printable ASCII characters.
//
// enforce (boolean, default true): with false a request that failed
// authentication goes on (a dry run); the outcome is logged and recorded.
//
// Credentials are compared as SHA-256 digests with crypto/subtle, every
// configured pair each time, so the time taken says nothing about which
// part of a guess was right. Result variables:
// actions.ngrok.basic_auth.credentials.presented (bool), .username (the
// presented username), .authorized (bool).
type BasicAuth struct {
	Credentials []yaml.Node `yaml:"credentials"`
	Realm       *string     `yaml:"realm"`
	Enforce     *bool       `yaml:"enforce"`

	creds     []credential
	challenge string // the WWW-Authenticate value, built at load
	enforce   bool
}

// credential is one configured pair: a digest of "user:password" when both
// parts are literal, templates otherwise.
type credential struct {
	digest     [sha256.Size]byte
	static     bool
	user, pass *policy.Template // one part may be literal, see Static
	whole      *policy.Template // the entire credential is one ${expr}
}

// ngrok's documented limits.
const (
	basicAuthMaxCredentials = 10
	basicAuthMinPassword    = 8
	basicAuthMaxPassword    = 128
	basicAuthMaxRealm       = 128
	basicAuthDefaultRealm   = "ngrok"
)

func newBasicAuth(c *policy.Config) (policy.Action, error) {
	a := &BasicAuth{}
	if err := c.Decode(a); err != nil {
		return nil, err
	}
	a.enforce = a.Enforce == nil || *a.Enforce

	realm := basicAuthDefaultRealm
	if a.Realm != nil && *a.Realm != "" {
		realm = *a.Realm
	}
	if n := utf8.RuneCountInString(realm); n > basicAuthMaxRealm {
		return nil, c.Errorf(fieldNode(c.Node, "realm"), "realm: %d characters, at most %d are allowed", n, basicAuthMaxRealm)
	}
	for _, r := range realm {
		if r < 0x20 || r > 0x7e {
			return nil, c.Errorf(fieldNode(c.Node, "realm"), "realm: %q contains %q; only printable ASCII characters are allowed", realm, r)
		}
	}
	// A quoted-string (RFC 9110 5.6.4): quote '"' and '\'.
	q := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(realm)
	a.challenge = `Basic realm="` + q + `"`

	if !hasField(c.Node, "credentials") || len(a.Credentials) == 0 {
		return nil, c.Errorf(fieldNode(c.Node, "credentials"), "credentials: at least one username:password pair is required")
	}
	if len(a.Credentials) > basicAuthMaxCredentials {
		return nil, c.Errorf(fieldNode(c.Node, "credentials"), "credentials: at most %d pairs are allowed, got %d", basicAuthMaxCredentials, len(a.Credentials))
	}
	for i := range a.Credentials {
		n := &a.Credentials[i]
		cr, err := compileCredential(c, n, i)
		if err != nil {
			return nil, err
		}
		a.creds = append(a.creds, cr)
	}
	a.Credentials = nil // keep digests and templates, not the text
	return a, nil
}

func compileCredential(c *policy.Config, n *yaml.Node, i int) (credential, error) {
	var cr credential
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return cr, c.Errorf(n, "credentials[%d]: want a \"username:password\" string", i)
	}
	raw := n.Value
	colon, whole := credentialColon(raw)
	if colon < 0 && !whole {
		if strings.Contains(raw, "${") {
			return cr, c.Errorf(n, "credentials[%d]: the ':' between username and password must be outside ${}, or the whole entry one ${expr}", i)
		}
		// The value is not quoted back: it may well be a bare password.
		return cr, c.Errorf(n, "credentials[%d]: no ':' between username and password; write username:password", i)
	}
	if whole {
		t, err := c.CompileTemplate(raw, n)
		if err != nil {
			return cr, err
		}
		cr.whole = t
		return cr, nil
	}
	user, err := c.CompileTemplate(raw[:colon], n)
	if err != nil {
		return cr, err
	}
	pass, err := c.CompileTemplate(raw[colon+1:], n)
	if err != nil {
		return cr, err
	}
	cr.user, cr.pass = user, pass
	if p, ok := pass.Static(); ok {
		if err := checkPassword(p); err != nil {
			return cr, c.Errorf(n, "credentials[%d]: %v", i, err)
		}
	}
	u, uok := user.Static()
	p, pok := pass.Static()
	if uok && pok {
		cr.static = true
		cr.digest = sha256.Sum256([]byte(u + ":" + p))
		cr.user, cr.pass = nil, nil
	}
	return cr, nil
}

// credentialColon finds the first ':' of raw outside ${...} ("$${" is a
// literal). It returns -1 when there is none, and whole=true when raw is
// exactly one ${expr}.
func credentialColon(raw string) (colon int, whole bool) {
	for i := 0; i < len(raw); {
		switch {
		case strings.HasPrefix(raw[i:], "$${"):
			i += 3
		case strings.HasPrefix(raw[i:], "${"):
			end := policy.InterpolationEnd(raw, i+2)
			if end < 0 {
				return -1, false // the template compiler reports it
			}
			if i == 0 && end == len(raw)-1 {
				return -1, true
			}
			i = end + 1
		case raw[i] == ':':
			return i, false
		default:
			i++
		}
	}
	return -1, false
}

func checkPassword(p string) error {
	if n := utf8.RuneCountInString(p); n < basicAuthMinPassword || n > basicAuthMaxPassword {
		return fmt.Errorf("the password has %d characters; it must have %d to %d", n, basicAuthMinPassword, basicAuthMaxPassword)
	}
	return nil
}

// digestFor returns the SHA-256 of the credential's "user:password" for this
// request, evaluating its interpolations.
func (cr *credential) digestFor(s *policy.State) ([sha256.Size]byte, error) {
	if cr.static {
		return cr.digest, nil
	}
	var user, pass string
	if cr.whole != nil {
		v, err := cr.whole.Eval(s)
		if err != nil {
			return [sha256.Size]byte{}, err
		}
		var ok bool
		if user, pass, ok = strings.Cut(v, ":"); !ok {
			return [sha256.Size]byte{}, fmt.Errorf("credential evaluated to a value without ':'")
		}
	} else {
		var err error
		if user, err = cr.user.Eval(s); err != nil {
			return [sha256.Size]byte{}, err
		}
		if strings.Contains(user, ":") {
			return [sha256.Size]byte{}, fmt.Errorf("credential username evaluated to a value containing ':'")
		}
		if pass, err = cr.pass.Eval(s); err != nil {
			return [sha256.Size]byte{}, err
		}
	}
	if err := checkPassword(pass); err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("credential evaluated: %v", err)
	}
	return sha256.Sum256([]byte(user + ":" + pass)), nil
}

// parseBasic returns the decoded "user:password" of an Authorization header
// using the Basic scheme (case-insensitive), or ok=false.
func parseBasic(h string) (userPass, user string, ok bool) {
	scheme, rest, found := strings.Cut(strings.TrimSpace(h), " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimLeft(rest, " "))
	if err != nil {
		return "", "", false
	}
	userPass = string(b)
	user, _, ok = strings.Cut(userPass, ":")
	if !ok {
		return "", "", false
	}
	return userPass, user, true
}

// Run checks the request's credentials and, when enforcing, answers 401.
func (a *BasicAuth) Run(s *policy.State) error {
	if !httpPhase(s) {
		return nil
	}
	userPass, user, presented := parseBasic(s.X.Req.Header.Get("Authorization"))
	authorized := false
	if presented {
		got := sha256.Sum256([]byte(userPass))
		match := 0
		// Every pair is compared, matched or not: no early exit.
		for i := range a.creds {
			want, err := a.creds[i].digestFor(s)
			if err != nil {
				return fmt.Errorf("credentials[%d]: %w", i, err)
			}
			match |= subtle.ConstantTimeCompare(got[:], want[:])
		}
		authorized = match == 1
	}
	if s.WantsResults() {
		s.SetResult("basic_auth", map[string]any{"credentials": map[string]any{
			"presented": presented, "username": user, "authorized": authorized,
		}})
	}
	if authorized {
		return nil
	}
	if !a.enforce {
		if s.Log != nil {
			s.Log.Info("basic-auth: request not authorized; let through (enforce: false)",
				"presented", presented, "username", user)
		}
		return nil
	}
	s.X.Res = respond(http.StatusUnauthorized, http.Header{"Www-Authenticate": {a.challenge}}, "")
	return nil
}

func init() {
	policy.Register(policy.Spec{
		Type:   "basic-auth",
		Phases: []policy.Phase{policy.OnHTTPRequest},
		New:    newBasicAuth,
	})
}

var _ policy.Action = (*BasicAuth)(nil)
