package e2e

// Golden tests: policies copied unchanged from ngrok's documentation, each
// with an expectation file beside it, run through the real listener.
//
// The expectation format is the one policy/actions uses for the same
// policies in process (testdata/ngrok/*.expect.yaml there), so its files
// run here unchanged too, plus what only a listener can show. Fields a
// listener cannot reproduce are mapped: a non-loopback client IP is
// presented through X-Forwarded-For from a trusted loopback peer (HTTP
// phases only), a fixed connection start becomes "any RFC 3339 time", a
// forward-internal target becomes a real internal endpoint that stamps its
// answers, and vars (not visible on the wire) are left to the in-process
// test.

import (
	"bytes"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/goldenfile"
	"github.com/sluicehq/sluice/policy"
	"go.yaml.in/yaml/v3"
)

// golden is an expectation file beside a policy (see internal/goldenfile).
type golden = goldenfile.File

// goldenDirs: the actions package's files (reused, not copied) and the
// examples added here (multi-action pages, getting started).
var goldenDirs = []string{
	"../../policy/actions/testdata/ngrok",
	"../../policy/actions/testdata/examples",
	"testdata/ngrok",
}

// goldenGeo answers GeoIP lookups with the example's request.geo_* fields
// (a MaxMind database is not part of the repository).
type goldenGeo struct{ info policy.GeoInfo }

func (f goldenGeo) Lookup(netip.Addr) policy.GeoInfo { return f.info }

func TestNgrokDocExamplesThroughListener(t *testing.T) {
	ran, skipped := 0, map[string]string{}
	for _, dir := range goldenDirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.expect.yaml"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no golden files in %s: %v", dir, err)
		}
		sort.Strings(files)
		for _, exp := range files {
			name := filepath.Base(filepath.Dir(exp)) + "/" + strings.TrimSuffix(filepath.Base(exp), ".expect.yaml")
			t.Run(name, func(t *testing.T) {
				g, src, polFile := readGolden(t, exp)
				if reason := goldenSkip(g, src); reason != "" {
					// A skip that blames a load error is checked, so that it
					// is noticed when the engine learns what was missing.
					if strings.Contains(reason, "load error") {
						if err := loadPolicy(t, filepath.Base(polFile), src); err == nil {
							t.Fatalf("skipped because of a load error, but the policy loads now: remove the skip (%s)", reason)
						}
					}
					skipped[name] = reason
					t.Skip(reason)
				}
				ran++
				runGoldenListener(t, g, src, polFile)
			})
		}
	}
	names := make([]string, 0, len(skipped))
	for n := range skipped {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t.Logf("skipped %s: %s", n, skipped[n])
	}
	t.Logf("%d examples run through the listener, %d skipped", ran, len(skipped))
}

func readGolden(t *testing.T, exp string) (*golden, string, string) {
	t.Helper()
	raw, err := os.ReadFile(exp)
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&g); err != nil {
		t.Fatalf("%s: %v", exp, err)
	}
	base := strings.TrimSuffix(exp, ".expect.yaml")
	polFile := base + ".yaml"
	if g.Policy != "" {
		polFile = filepath.Join(filepath.Dir(exp), g.Policy)
	} else if _, err := os.Stat(polFile); err != nil {
		polFile = base + ".json"
	}
	src, err := os.ReadFile(polFile)
	if err != nil {
		t.Fatal(err)
	}
	return &g, string(src), polFile
}

// goldenSkip says why an example cannot run through a loopback listener.
func goldenSkip(g *golden, src string) string {
	if g.Skip != "" {
		return g.Skip
	}
	if c := g.Request.Client; c != "" && g.Expect.LoadError == "" {
		ap, err := netip.ParseAddrPort(c)
		if err == nil && !ap.Addr().IsLoopback() && strings.Contains(src, "on_tcp_connect") {
			return "on_tcp_connect sees the TCP peer, and client " + c +
				" cannot connect over loopback; policy/actions runs it in process"
		}
	}
	return ""
}

func runGoldenListener(t *testing.T, g *golden, src, polFile string) {
	t.Logf("source: %s", g.Source)
	if g.Note != "" {
		t.Logf("note: %s", g.Note)
	}
	e := &g.Expect
	if e.LoadError != "" {
		err := loadPolicy(t, filepath.Base(polFile), src)
		if err == nil {
			t.Fatalf("loaded; want an error mentioning %q", e.LoadError)
		}
		if !strings.Contains(err.Error(), e.LoadError) {
			t.Fatalf("error %q does not mention %q", err, e.LoadError)
		}
		return
	}
	if rq := g.Request; rq.GeoCity != "" || rq.GeoCountry != "" || rq.GeoCC != "" || rq.GeoASOrg != "" || rq.GeoContinent != "" {
		policy.SetGeoProvider(goldenGeo{policy.GeoInfo{City: rq.GeoCity, Country: rq.GeoCountry,
			CountryCode: rq.GeoCC, IsEU: rq.GeoIsEU, ASOrg: rq.GeoASOrg, Continent: rq.GeoContinent}})
		t.Cleanup(func() { policy.SetGeoProvider(nil) })
	}

	reqURL := g.Request.URL
	u, err := url.Parse(reqURL)
	if err != nil {
		t.Fatal(err)
	}
	s := setup{}
	if g.Upstream.Status != 0 || g.Upstream.Body != "" || g.Upstream.BodyRepeat != nil || g.Upstream.Headers != nil {
		s.Respond = goldenUpstream(g)
	}
	client := g.Request.Client
	var from string
	if client != "" {
		ap := netip.MustParseAddrPort(client)
		if ap.Addr().IsLoopback() {
			from = ap.Addr().String()
		} else {
			s.Trusted = true
		}
	}
	eps := []ep{{URL: u.Scheme + "://" + u.Host, Policy: src}}
	if u.Scheme == "tcp" {
		eps[0] = ep{URL: "tcp://127.0.0.1:1", Listen: "127.0.0.1:0", Policy: src, Upstream: "none"}
	}
	internals := e.ForwardInternalOneOf
	if fi := e.ForwardInternal; fi != "" {
		internals = []string{fi}
	}
	for _, fi := range internals {
		// A real internal endpoint with its own upstream, stamping its
		// answers so the client can tell who served it.
		other := newBackend(t, nil)
		eps = append(eps, ep{URL: fi, Upstream: other.URL, Policy: `
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers: {x-internal-endpoint: "${endpoint.url}"}
`})
	}
	env := startWith(t, s, eps...)
	if u.Scheme == "tcp" {
		got, _ := rawExchange(t, env.addr("127.0.0.1:0"), "hello")
		if e.Closed && got != "" {
			t.Fatalf("got %q; want the connection closed", got)
		}
		return
	}

	q := request{Method: g.Request.Method, URL: reqURL, Body: g.Request.Body}
	if len(g.Request.BodyRepeat) == 2 {
		q.Body = strings.Repeat(fmt.Sprint(g.Request.BodyRepeat[0]), g.Request.BodyRepeat[1].(int))
	}
	if g.Request.Length > 0 {
		q.Body = strings.Repeat("x", g.Request.Length)
	}
	for k, v := range g.Request.Headers {
		q.Header = append(q.Header, k, v)
	}
	if s.Trusted {
		q.Header = append(q.Header, "X-Forwarded-For", netip.MustParseAddrPort(client).Addr().String())
	}
	c := env.clientFrom(from)
	var r reply
	before := env.back.hits.Load()
	for i := 0; i < max(1, g.Request.Repeat); i++ {
		before = env.back.hits.Load()
		r = send(t, c, q)
	}

	x := expect{Closed: e.Closed, Status: e.Status, Headers: e.Headers, Absent: e.HeadersAbsent,
		Body: e.Body, BodyRegexp: e.BodyRegexp, UpURI: e.UpstreamURI, UpHost: e.UpstreamHost,
		UpHeaders: e.UpstreamHeaders, UpAbsent: e.UpstreamHeadersAbsent, Log: e.Log}
	// Values the listener makes differently, checked as patterns: the
	// connection starts when the test connects (any RFC 3339 time where
	// the document shows a fixed one), and the proxy names endpoints
	// ep_<host>_<port> where the in-process test uses ep_<host>.
	loose := map[string]*regexp.Regexp{} // "res:Name" / "up:Name" → pattern
	ts := g.Request.ConnStart
	anyTime := `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`
	pattern := func(v string) *regexp.Regexp {
		q := regexp.QuoteMeta(v)
		changed := false
		if ts != "" && strings.Contains(v, ts) {
			q, changed = strings.ReplaceAll(q, regexp.QuoteMeta(ts), anyTime), true
		}
		if epID := "ep_" + u.Hostname(); v == epID {
			q, changed = regexp.QuoteMeta(epID)+`_\d+`, true
		}
		if !changed {
			return nil
		}
		return regexp.MustCompile("^" + q + "$")
	}
	x.Headers, x.UpHeaders = loosen("res:", x.Headers, pattern, loose), loosen("up:", x.UpHeaders, pattern, loose)
	if ts != "" {
		if x.Body != nil {
			x.BodyRegexp = pattern(*x.Body).String()
			x.Body = nil
		}
		x.BodyRegexp = strings.ReplaceAll(x.BodyRegexp, ts, anyTime)
	}
	if e.Upstream != nil && len(internals) == 0 {
		x.Upstream, x.NoUpstream = *e.Upstream, !*e.Upstream
	}
	if len(internals) > 0 {
		x.NoUpstream = true
		alts := make([]string, len(internals))
		for i, fi := range internals {
			alts[i] = regexp.QuoteMeta(fi)
		}
		loose["res:X-Internal-Endpoint"] = regexp.MustCompile("^(" + strings.Join(alts, "|") + ")$")
	}
	check(t, env, r, before, x)
	for k, re := range loose {
		var got string
		if name, ok := strings.CutPrefix(k, "up:"); ok {
			if s := env.back.last.Load(); s != nil {
				got = s.Header.Get(name)
			}
		} else {
			got = r.Header.Get(strings.TrimPrefix(k, "res:"))
		}
		if !re.MatchString(got) {
			t.Errorf("%s = %q, want a match of %s", k, got, re)
		}
	}
	for _, k := range e.HeadersPresent {
		if r.Header.Get(k) == "" {
			t.Errorf("response header %s missing", k)
		}
	}
	if e.DecodedBodyLength != 0 && len(r.Body) != e.DecodedBodyLength {
		t.Errorf("decoded body is %d bytes, want %d", len(r.Body), e.DecodedBodyLength)
	}
	if len(e.Vars) > 0 {
		t.Logf("vars %v are not visible on the wire; policy/actions checks them in process", e.Vars)
	}
}

func goldenUpstream(g *golden) func(w http.ResponseWriter, r *http.Request, s *seen) {
	body := g.Upstream.Body
	if len(g.Upstream.BodyRepeat) == 2 {
		body = strings.Repeat(fmt.Sprint(g.Upstream.BodyRepeat[0]), g.Upstream.BodyRepeat[1].(int))
	}
	status := g.Upstream.Status
	if status == 0 {
		status = http.StatusOK
	}
	return func(w http.ResponseWriter, r *http.Request, s *seen) {
		for k, v := range g.Upstream.Headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	}
}

// loosen moves the values pattern turns into regexps out of m into loose.
func loosen(prefix string, m map[string]string, pattern func(string) *regexp.Regexp, loose map[string]*regexp.Regexp) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if re := pattern(v); re != nil {
			loose[prefix+k] = re
			continue
		}
		out[k] = v
	}
	return out
}
