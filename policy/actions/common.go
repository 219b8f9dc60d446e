package actions

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/policy"
	"go.yaml.in/yaml/v3"
	"golang.org/x/net/http/httpguts"
)

// Helpers shared by several actions: header maps with interpolated values,
// status code checks, generated responses.

// maxHeaders is ngrok's limit on header entries per action.
const maxHeaders = 10

// headerTemplates is a `headers:` map whose values are ${} templates. Names
// are validated at load; values are evaluated per request.
type headerTemplates struct {
	names []string // sorted, lower case: deterministic order
	canon []string // the names as http.Header keys, computed at load
	vals  []*policy.Template
}

// compileHeaders checks a decoded headers map. node is the `config:` node,
// used to point errors at the map entry.
func compileHeaders(c *policy.Config, field string, m map[string]policy.Template, required bool) (headerTemplates, error) {
	var h headerTemplates
	if len(m) == 0 {
		if required {
			return h, c.Errorf(fieldNode(c.Node, field), "%s: at least one header is required", field)
		}
		return h, nil
	}
	if len(m) > maxHeaders {
		return h, c.Errorf(fieldNode(c.Node, field), "%s: at most %d headers are allowed, got %d", field, maxHeaders, len(m))
	}
	for name := range m {
		h.names = append(h.names, name)
	}
	sort.Strings(h.names)
	for i, name := range h.names {
		if !httpguts.ValidHeaderFieldName(name) {
			return h, c.Errorf(keyNode(fieldNode(c.Node, field), name), "%s: %q is not a valid header name", field, name)
		}
		t := m[name]
		h.vals = append(h.vals, &t)
		h.names[i] = strings.ToLower(name)
		h.canon = append(h.canon, http.CanonicalHeaderKey(name))
	}
	return h, nil
}

// eval evaluates every value. Values must be valid header values: an
// interpolation that yields a newline is an error, not a header injection.
func (h headerTemplates) eval(s *policy.State) ([]string, error) {
	return h.evalInto(s, make([]string, 0, len(h.vals)))
}

// evalInto is eval appending to dst, so a caller can pass a stack buffer.
func (h headerTemplates) evalInto(s *policy.State, dst []string) ([]string, error) {
	out := dst[:0]
	for i, t := range h.vals {
		v, err := t.Eval(s)
		if err != nil {
			return nil, fmt.Errorf("header %q: %w", h.names[i], err)
		}
		if !httpguts.ValidHeaderFieldValue(v) {
			return nil, fmt.Errorf("header %q: value %q contains characters not allowed in a header", h.names[i], v)
		}
		out = append(out, v)
	}
	return out, nil
}

// fieldNode returns the value node of key in mapping n, or n itself when it
// is absent (so errors still point at the config).
func fieldNode(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return n
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return n
}

// keyNode returns the key node of key in mapping n (or n).
func keyNode(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return n
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i]
		}
	}
	return n
}

// hasField reports whether mapping n has key.
func hasField(n *yaml.Node, key string) bool {
	if n == nil || n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// checkStatus validates a status code field against [lo, hi].
func checkStatus(c *policy.Config, code, lo, hi int) error {
	if code < lo || code > hi {
		return c.Errorf(fieldNode(c.Node, "status_code"), "status_code: %d is not allowed here (want %d-%d)", code, lo, hi)
	}
	return nil
}

// respond makes the generated response an action answers with. The request
// body is not needed any more; the proxy closes it.
func respond(status int, header http.Header, body string) *exchange.Response {
	if header == nil {
		header = http.Header{}
	}
	res := &exchange.Response{
		StatusCode:    status,
		Header:        header,
		ContentLength: int64(len(body)),
		Generated:     true,
	}
	if body != "" {
		res.Body = io.NopCloser(strings.NewReader(body))
	}
	res.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return res
}

// sniffContentType infers custom-response's content type when the user gave
// none: JSON is recognised (http.DetectContentType calls it text/plain),
// everything else is sniffed per the WHATWG algorithm.
func sniffContentType(body string) string {
	if body == "" {
		return ""
	}
	t := bytes.TrimSpace([]byte(body))
	if len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(t) {
		return "application/json"
	}
	return http.DetectContentType([]byte(body))
}

// phaseOf reports whether s runs over an HTTP exchange.
func httpPhase(s *policy.State) bool {
	return s.X != nil && s.Phase != policy.OnTCPConnect
}
