package actions

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/policy"
	"go.yaml.in/yaml/v3"
)

// This file holds what url-rewrite and redirect share: ngrok's from/to
// semantics. `from` is an unanchored regular expression over the whole URL
// (scheme://host[:port]/path?query); every match is replaced by `to`, in
// which $1 / ${name} refer to groups. Without `from` the whole URL is
// replaced. ${expr} interpolation in both runs before the regexp; a `from`
// without interpolation is compiled once at load.

// urlMatch is a compiled from/to pair.
type urlMatch struct {
	from   *policy.Template // nil: the whole URL matches
	fromRe *regexp.Regexp   // compiled at load when from is static
	to     *policy.Template
}

// newURLMatch validates and compiles from/to. fromNode/toNode locate them for
// error messages.
func newURLMatch(c *policy.Config, from *policy.Template, fromNode *yaml.Node, to *policy.Template) (*urlMatch, error) {
	if to == nil {
		return nil, c.Errorf(nil, "missing required field \"to\"")
	}
	m := &urlMatch{from: from, to: to}
	if from != nil {
		if s, static := from.Static(); static {
			if s == "" {
				m.from = nil // ngrok: an empty from matches the whole URL
			} else {
				re, err := regexp.Compile(s)
				if err != nil {
					return nil, c.Errorf(fromNode, "from: invalid regular expression %q: %v", s, regexpReason(err))
				}
				m.fromRe = re
			}
		}
	}
	return m, nil
}

// regexpReason is the reason part of a regexp error (the caller quotes the
// whole pattern already).
func regexpReason(err error) string {
	var e *syntax.Error
	if errors.As(err, &e) {
		return fmt.Sprintf("%s: `%s`", e.Code, e.Expr)
	}
	return err.Error()
}

// match is where from matched first: the whole match and its groups as
// offsets into src; nil loc means no match.
type match struct {
	src string
	loc []int
}

// groups lists the whole match and its groups, as ngrok's `matches` result
// variable does (built only when results are wanted).
func (m match) groups() []string {
	if m.loc == nil {
		return nil
	}
	out := make([]string, len(m.loc)/2)
	for i := range out {
		if m.loc[2*i] >= 0 {
			out[i] = m.src[m.loc[2*i]:m.loc[2*i+1]]
		}
	}
	return out
}

// apply returns the URL after replacement and where from matched first.
func (m *urlMatch) apply(s *policy.State, current string) (string, match, error) {
	to, err := m.to.Eval(s)
	if err != nil {
		return "", match{}, fmt.Errorf("to: %w", err)
	}
	re := m.fromRe
	if m.from != nil && re == nil {
		src, err := m.from.Eval(s)
		if err != nil {
			return "", match{}, fmt.Errorf("from: %w", err)
		}
		if src != "" {
			// Interpolated values are data, not patterns: the user wrote
			// the regexp around them, so they are inserted as evaluated
			// (ngrok's documented ^${req.url.authority}/... pattern relies
			// on this) and a resulting bad pattern is a runtime error.
			if re, err = regexp.Compile(src); err != nil {
				return "", match{}, fmt.Errorf("from: invalid regular expression %q: %v", src, regexpReason(err))
			}
		}
	}
	if re == nil {
		return to, match{src: current, loc: []int{0, len(current)}}, nil
	}
	out, loc := replaceAll(re, current, to)
	return out, match{src: current, loc: loc}, nil
}

// replaceAll is re.ReplaceAllString(src, to) with
// re.FindStringSubmatchIndex(src) (nil: no match) in one pass over src
// instead of two; the result is built on the stack and becomes a new
// string only when it differs from src.
func replaceAll(re *regexp.Regexp, src, to string) (string, []int) {
	first := re.FindStringSubmatchIndex(src)
	if first == nil {
		return src, nil
	}
	all := [][]int{first}
	if first[1] < len(src) || first[0] == first[1] {
		// More matches may follow. (A non-empty match that reaches the end
		// is the last one: an empty match right after a match does not
		// count, as in ReplaceAll.)
		all = re.FindAllStringSubmatchIndex(src, -1)
	}
	var buf [256]byte
	dst, last := buf[:0], 0
	for _, m := range all {
		dst = append(dst, src[last:m[0]]...)
		dst = re.ExpandString(dst, to, src, m)
		last = m[1]
	}
	dst = append(dst, src[last:]...)
	out := src
	if string(dst) != src {
		out = string(dst)
	}
	return out, first
}

// requestURL is the URL the regexp runs over: scheme://host/path?query as
// the client sent it (host includes the port when the client gave one).
func requestURL(r *exchange.Request) string {
	return schemeOf(r) + "://" + r.Host + r.URI()
}

// resolveURL parses the replacement result against the original URL: a
// relative result ("/new/path") keeps the scheme and host, and a result
// whose host the replacement emptied ("https:///x", which ngrok's
// interpolation example produces) keeps the original host. Characters that
// are not valid in a URL (a space from an interpolated city name) are
// percent-encoded rather than rejected.
func resolveURL(orig, result string) (*url.URL, error) {
	base, err := url.Parse(orig)
	if err != nil {
		return nil, fmt.Errorf("request URL %q: %w", orig, err)
	}
	result = escapeLoose(result)
	u, err := url.Parse(result)
	if err != nil {
		return nil, fmt.Errorf("resulting URL %q is not valid: %w", result, err)
	}
	if u.Scheme != "" && u.Host == "" && u.Opaque == "" && strings.HasPrefix(result[len(u.Scheme):], ":///") {
		u.Host = base.Host
	}
	u = base.ResolveReference(u)
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("resulting URL %q must be http or https", u.String())
	}
	if !validHost(u.Host) {
		return nil, fmt.Errorf("resulting URL %q has no valid host", u.String())
	}
	return u, nil
}

// escapeLoose percent-encodes bytes that may not appear in a URL (controls,
// space, non-ASCII and a few delimiters), leaving valid escapes and
// reserved characters alone.
func escapeLoose(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' || c == '`' || c == '{' || c == '|' || c == '}' {
			if b.Len() == 0 {
				b.Grow(len(s) + 8)
				b.WriteString(s[:i])
			}
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return s
	}
	return b.String()
}

// Error codes for the error.code result variables. ngrok documents the
// variables but not its codes; these name what failed.
const (
	errCodeRewrite  = "ERR_URL_REWRITE"
	errCodeRedirect = "ERR_REDIRECT"
)

// setError records the error result variables ngrok documents for actions
// with from/to (actions.ngrok.<name>.error.code/message).
func setError(s *policy.State, action, code string, err error) {
	s.SetResult(action, map[string]any{
		"error": map[string]any{"code": code, "message": err.Error()},
	})
}

// validHost checks host[:port] as it may appear in a Host header.
func validHost(hp string) bool {
	host, port := hp, ""
	if i := strings.LastIndexByte(hp, ':'); i >= 0 && !strings.HasSuffix(hp, "]") {
		host, port = hp[:i], hp[i+1:]
		if port == "" {
			return false
		}
		for _, c := range port {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		_, err := netip.ParseAddr(host[1 : len(host)-1])
		return err == nil
	}
	if host == "" {
		return false
	}
	for _, c := range host {
		ok := c == '.' || c == '-' || c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '%'
		if !ok {
			return false
		}
	}
	return true
}
