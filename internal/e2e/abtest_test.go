package e2e

// ngrok's A/B test examples (traffic-policy/examples/a-b-tests.mdx, YAML
// tabs, unchanged in testdata/ngrok/a-b-tests-*.yaml) pick at random, so
// their outcome is a distribution rather than one answer.

import (
	"os"
	"testing"
)

const abInternal = `
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers: {x-internal-endpoint: "${endpoint.url}"}
`

func abEnv(t *testing.T, file string) *env {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	other := newBackend(t, nil)
	return start(t,
		ep{URL: "https://app.example.com", Policy: string(src)},
		ep{URL: "https://a.internal", Upstream: other.URL, Policy: abInternal},
		ep{URL: "https://b.internal", Upstream: other.URL, Policy: abInternal})
}

// TestABTestBasic: rand.double() <= 0.5 sends about half the requests to
// a.internal, the rest to b.internal. 60 requests all landing on one side
// has a probability of 2^-59.
func TestABTestBasic(t *testing.T) {
	e := abEnv(t, "testdata/ngrok/a-b-tests-1.yaml")
	c := e.client()
	seen := map[string]int{}
	for range 60 {
		r := get(t, c, "https://app.example.com/")
		if r.Err != nil || r.Status != 200 {
			t.Fatalf("status %d, %v", r.Status, r.Err)
		}
		seen[r.Header.Get("X-Internal-Endpoint")]++
	}
	if len(seen) != 2 || seen["https://a.internal"] == 0 || seen["https://b.internal"] == 0 {
		t.Fatalf("answered by %v; want both https://a.internal and https://b.internal", seen)
	}
	if e.back.hits.Load() != 0 {
		t.Errorf("the endpoint's own upstream was used %d times", e.back.hits.Load())
	}
}

// TestABTestRewrite: url-rewrite does not end the phase, so every request
// reaches b.internal's upstream, about half of them rewritten.
func TestABTestRewrite(t *testing.T) {
	e := abEnv(t, "testdata/ngrok/a-b-tests-2.yaml")
	c := e.client()
	paths := map[string]int{}
	for range 60 {
		r := get(t, c, "https://app.example.com/path/to/test")
		if r.Err != nil || r.Status != 200 {
			t.Fatalf("status %d, %v", r.Status, r.Err)
		}
		if got := r.Header.Get("X-Internal-Endpoint"); got != "https://b.internal" {
			t.Fatalf("answered by %q; want https://b.internal every time", got)
		}
		paths[r.seen(t).Path]++
	}
	if len(paths) != 2 || paths["/path/to/test"] == 0 || paths["/path/to/test-b"] == 0 {
		t.Fatalf("upstream paths %v; want both /path/to/test and /path/to/test-b", paths)
	}
}
