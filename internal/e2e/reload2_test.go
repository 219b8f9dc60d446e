package e2e

// Reload details a user relies on: rate-limit counters that survive a
// reload, and Kubernetes-style ConfigMap updates (a symlink swapped).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func rateLimitGen(name string, gen, capacity int) string {
	return fmt.Sprintf(`
on_http_request:
  - actions:
      - type: rate-limit
        config:
          name: %s
          algorithm: sliding_window
          capacity: %d
          rate: 60s
          bucket_key: [conn.client_ip]
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers: {x-gen: "%d"}
`, name, capacity, gen)
}

// waitGen sends requests until one is answered by policy generation gen
// and returns it (bounded: 5 s).
func waitGen(t *testing.T, e *env, gen string) reply {
	t.Helper()
	c := e.client()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := get(t, c, "http://app.test/")
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if r.Header.Get("X-Gen") == gen {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("generation %s not served within 5s (last %q, status %d)", gen, r.Header.Get("X-Gen"), r.Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRateLimitSurvivesReload: the counters belong to the limit's identity
// (name, capacity, rate, bucket_key), not to a policy version, so a reload
// that keeps the limit keeps its counts, and one that changes it starts
// afresh (docs/actions.md, rate-limit).
func TestRateLimitSurvivesReload(t *testing.T) {
	name := "e2e survives reload " + nonce()
	e := startWith(t, setup{Watch: true}, ep{URL: "http://app.test", Policy: rateLimitGen(name, 1, 2)})
	path := e.files["http://app.test"]
	c := e.client()
	for i := range 2 {
		if r := get(t, c, "http://app.test/"); r.Status != 200 {
			t.Fatalf("request %d: status %d", i+1, r.Status)
		}
	}
	if r := get(t, c, "http://app.test/"); r.Status != 429 {
		t.Fatalf("third request: status %d, want 429", r.Status)
	}
	// Refused requests are not counted, so polling for the new generation
	// does not change the bucket.
	renameSave(t, filepath.Dir(path), path, rateLimitGen(name, 2, 2))
	if r := waitGen(t, e, "2"); r.Status != 429 {
		t.Fatalf("after a reload that kept the limit: status %d, want 429 (counters lost)", r.Status)
	}
	renameSave(t, filepath.Dir(path), path, rateLimitGen(name, 3, 5))
	if r := waitGen(t, e, "3"); r.Status != 200 {
		t.Fatalf("after a reload that changed the capacity: status %d, want 200 (a new table)", r.Status)
	}
}

// TestReloadSymlinkSwap: the policy file is a symlink into a directory
// that is itself reached through a symlink (..data), as a Kubernetes
// ConfigMap volume is; an update swaps ..data atomically.
func TestReloadSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(n int) {
		d := filepath.Join(dir, fmt.Sprintf("..v%d", n))
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(d, "policy.yaml"), fmt.Sprintf(`
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers: {x-gen: "%d"}
`, n))
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(filepath.Base(d), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version(1)
	path := filepath.Join(dir, "policy.yaml")
	if err := os.Symlink(filepath.Join("..data", "policy.yaml"), path); err != nil {
		t.Fatal(err)
	}
	e := startWith(t, setup{Watch: true}, ep{URL: "http://app.test", PolicyFile: path})
	waitGen(t, e, "1")
	for n := 2; n <= 4; n++ {
		version(n)
		waitGen(t, e, fmt.Sprint(n))
	}
}

// TestInFlightRequestKeepsItsVersion: a request whose upstream answers
// after a reload still gets the response phase of the version that ran
// its request phase, while new requests already get the new version.
func TestInFlightRequestKeepsItsVersion(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	respond := func(w http.ResponseWriter, r *http.Request, s *seen) {
		if r.URL.Path == "/hold" {
			close(arrived)
			<-release
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s)
	}
	e := startWith(t, setup{Watch: true, Respond: respond}, ep{URL: "http://app.test", Policy: versionPolicy(1)})
	path := e.files["http://app.test"]

	held := make(chan reply, 1)
	go func() { held <- send(t, e.client(), request{URL: "http://app.test/hold"}) }()
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("held request did not reach the upstream")
	}
	renameSave(t, filepath.Dir(path), path, versionPolicy(2))
	c := e.client()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, err := versionRequest(context.Background(), c, "http://app.test/new")
		if err != nil {
			close(release)
			t.Fatal(err)
		}
		if v == 2 {
			break
		}
		if time.Now().After(deadline) {
			close(release)
			t.Fatal("version 2 not served within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	r := <-held
	if r.Err != nil || r.Status != 200 {
		t.Fatalf("held request: status %d, %v", r.Status, r.Err)
	}
	up := r.seen(t).Header.Get("X-Policy-Version")
	down := r.Header.Values("X-Policy-Version")
	if up != "1" || len(down) != 1 || down[0] != "1" {
		t.Fatalf("held request: request phase %q, response phase %q; want version 1 for both", up, down)
	}
}

// TestTwoEndpointsShareAPolicyFile: two endpoints load the same file (each
// its own handle, one watcher); a change reaches both.
func TestTwoEndpointsShareAPolicyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.yaml")
	writeFile(t, path, versionPolicy(1))
	e := startWith(t, setup{Watch: true},
		ep{URL: "http://a.test", PolicyFile: path},
		ep{URL: "http://b.test", PolicyFile: path})
	renameSave(t, filepath.Dir(path), path, versionPolicy(2))
	c := e.client()
	for _, host := range []string{"a.test", "b.test"} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			v, err := versionRequest(context.Background(), c, "http://"+host+"/")
			if err != nil {
				t.Fatal(err)
			}
			if v == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still serves version %d 5s after the shared file changed", host, v)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestBrokenReloadLogsOnce: a broken save is one log line (with file:line:
// col), whether written by rename or in place, and the fix applies.
func TestBrokenReloadLogsOnce(t *testing.T) {
	for _, how := range []string{"rename", "in place"} {
		t.Run(how, func(t *testing.T) {
			e := startWith(t, setup{Watch: true}, ep{URL: "http://app.test", Policy: versionPolicy(1)})
			path := e.files["http://app.test"]
			save := func(data string) {
				if how == "rename" {
					renameSave(t, filepath.Dir(path), path, data)
				} else {
					overwrite(t, path, data)
				}
			}
			fails := func() int { return strings.Count(e.logs.String(), "policy reload failed") }
			save(brokenPolicy(1, 99))
			deadline := time.Now().Add(5 * time.Second)
			for fails() == 0 {
				if time.Now().After(deadline) {
					t.Fatal("no failure logged within 5s")
				}
				time.Sleep(5 * time.Millisecond)
			}
			c := e.client()
			if v, err := versionRequest(context.Background(), c, "http://app.test/"); err != nil || v != 1 {
				t.Fatalf("after a broken save: version %d, %v; want 1 still", v, err)
			}
			save(versionPolicy(2))
			for {
				v, err := versionRequest(context.Background(), c, "http://app.test/")
				if err != nil {
					t.Fatal(err)
				}
				if v == 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the fixed file was not applied within 5s")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if n := fails(); n != 1 {
				t.Errorf("%d failure lines for one broken save, want 1:\n%s", n, e.logs.String())
			}
		})
	}
}
