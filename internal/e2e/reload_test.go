package e2e

// Hot reload under load: the policy file changes hundreds of times (valid
// and broken versions, rename-saves and in-place writes) while clients keep
// sending requests over keep-alive connections.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// versionPolicy stamps version v on the request (the upstream echoes it)
// and on the response: a request served by one version carries the same
// number twice.
func versionPolicy(v int) string {
	return pad(fmt.Sprintf(`# version %d
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            x-policy-version: "%d"
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers:
            x-policy-version: "%d"
`, v, v, v))
}

// fileSize is the length of every version of the policy file, so that an
// in-place write never has to truncate it (see overwrite).
const fileSize = 640

// pad fills a policy up to fileSize with a YAML comment.
func pad(s string) string {
	if len(s) > fileSize-2 {
		panic("policy longer than fileSize")
	}
	return s + "#" + strings.Repeat("-", fileSize-len(s)-2) + "\n"
}

// brokenPolicy is a file that must fail to load; it would stamp v if it
// were ever applied.
func brokenPolicy(kind, v int) string {
	switch kind % 5 {
	case 0: // YAML syntax error
		return pad(fmt.Sprintf("on_http_request:\n  - actions: [ {type: add-headers, config: {headers: {x-policy-version: \"%d\"}}\n", v))
	case 1: // unknown action type
		return strings.Replace(versionPolicy(v), "type: add-headers", "type: add-headerz", 1)[:fileSize-1] + "\n"
	case 2: // CEL type error
		return strings.Replace(versionPolicy(v), "  - actions:", "  - expressions: [\"req.url.path + 1 == 'x'\"]\n    actions:", 1)[:fileSize-1] + "\n"
	case 3: // unknown variable in an interpolation
		return strings.Replace(versionPolicy(v), fmt.Sprintf(`"%d"`, v), fmt.Sprintf(`"%d${req.nope}"`, v), 1)[:fileSize-1] + "\n"
	default: // unknown field
		return strings.Replace(versionPolicy(v), "config:", "confg:", 1)[:fileSize-1] + "\n"
	}
}

// loadStats is what one client goroutine saw.
type loadStats struct {
	requests int
	failures []string // first few
	nfail    int
	last     int
	seen     map[int]bool
	lastA    atomic.Int64 // last, for the writer to read while the client runs
}

func (s *loadStats) fail(format string, args ...any) {
	s.nfail++
	if len(s.failures) < 5 {
		s.failures = append(s.failures, fmt.Sprintf(format, args...))
	}
}

// TestReloadUnderLoad: HTTP/1.1 keep-alive clients, one connection each.
func TestReloadUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("reload under load takes a few seconds")
	}
	reloadUnderLoad(t, "http://app.test", 210, func(e *env) func() *http.Client {
		return e.client // a client (and connection) per goroutine
	})
}

// TestReloadUnderLoadHTTP2: the goroutines share one HTTP/2 connection
// over TLS, so concurrent streams of one connection straddle reloads.
func TestReloadUnderLoadHTTP2(t *testing.T) {
	if testing.Short() {
		t.Skip("reload under load takes a few seconds")
	}
	reloadUnderLoad(t, "https://app.test", 60, func(e *env) func() *http.Client {
		c := e.clientH2()
		return func() *http.Client { return c }
	})
}

// reloadUnderLoad writes changes versions of the endpoint's policy while 8
// goroutines send requests with clients from newClient.
func reloadUnderLoad(t *testing.T, endpoint string, changes int, clientsFor func(e *env) func() *http.Client) {
	const clients = 8
	e := startWith(t, setup{Watch: true}, ep{URL: endpoint, Policy: versionPolicy(0)})
	path := e.files[endpoint]
	dir := filepath.Dir(path)
	newClient := clientsFor(e)

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var maxSeen atomic.Int64 // highest version any client saw
	stop := make(chan struct{})
	stats := make([]*loadStats, clients)
	var wg sync.WaitGroup
	for i := range clients {
		st := &loadStats{last: -1, seen: map[int]bool{}}
		stats[i] = st
		c := newClient()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				v, err := versionRequest(ctx, c, fmt.Sprintf("%s/load?client=%d&n=%d", endpoint, i, n))
				st.requests++
				if err != nil {
					st.fail("request %d: %v", n, err)
					continue
				}
				if v < st.last {
					st.fail("request %d: version %d after %d (not monotonic)", n, v, st.last)
				}
				st.last = v
				st.lastA.Store(int64(v))
				st.seen[v] = true
				for {
					m := maxSeen.Load()
					if int64(v) <= m || maxSeen.CompareAndSwap(m, int64(v)) {
						break
					}
				}
			}
		}()
	}

	// The writer: each change is confirmed before the next one (a valid
	// version by being served, a broken one by its log line), so every
	// change is really loaded, not merged into the next by debouncing.
	valid := map[int]bool{0: true}
	final := 0
	applied, rejected := 0, 0
	for i := 1; i <= changes; i++ {
		var data string
		broken := i%3 == 0
		if broken {
			data = brokenPolicy(i/3, 1_000_000+i)
		} else {
			data = versionPolicy(i)
			valid[i] = true
			final = i
		}
		failsBefore := strings.Count(e.logs.String(), "policy reload failed")
		if i%2 == 0 {
			renameSave(t, dir, path, data)
		} else {
			overwrite(t, path, data)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			if broken && strings.Count(e.logs.String(), "policy reload failed") > failsBefore {
				rejected++
				break
			}
			if !broken && maxSeen.Load() >= int64(i) {
				applied++
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				close(stop)
				wg.Wait()
				t.Fatalf("change %d (broken=%v) not picked up within 5s; max version served %d", i, broken, maxSeen.Load())
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	// Every client must get to the final version.
	deadline := time.Now().Add(5 * time.Second)
	for _, st := range stats {
		for st.lastA.Load() != int64(final) && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()

	total, fails := 0, 0
	for i, st := range stats {
		total += st.requests
		fails += st.nfail
		for _, f := range st.failures {
			t.Errorf("client %d: %s", i, f)
		}
		for v := range st.seen {
			if !valid[v] {
				t.Errorf("client %d saw version %d, which was never a valid file", i, v)
			}
		}
		if st.last != final {
			t.Errorf("client %d ended on version %d, want the final %d", i, st.last, final)
		}
	}
	t.Logf("%d changes (%d applied, %d rejected), %d requests, %d failed", changes, applied, rejected, total, fails)
	if fails != 0 {
		t.Fatalf("%d of %d requests failed", fails, total)
	}
	if applied+rejected != changes {
		t.Fatalf("only %d of %d changes confirmed", applied+rejected, changes)
	}
	// One positioned line per rejected version.
	lines := 0
	for _, l := range strings.Split(e.logs.String(), "\n") {
		if !strings.Contains(l, "policy reload failed") {
			continue
		}
		lines++
		if !regexp.MustCompile(regexp.QuoteMeta(filepath.Base(path)) + `:\d+:\d+`).MatchString(l) {
			t.Errorf("reload failure without file:line:col: %s", l)
		}
	}
	if lines < rejected {
		t.Errorf("%d failure log lines for %d broken versions", lines, rejected)
	}
}

// TestReloadFixtures: the versions TestReloadUnderLoad writes load, and
// every broken kind fails, with a position.
func TestReloadFixtures(t *testing.T) {
	if err := loadPolicy(t, "v.yaml", versionPolicy(7)); err != nil {
		t.Fatalf("valid version: %v", err)
	}
	for k := range 5 {
		data := brokenPolicy(k, 1_000_007)
		if len(data) != fileSize || len(versionPolicy(7)) != fileSize {
			t.Fatalf("kind %d: %d bytes, want %d", k, len(data), fileSize)
		}
		err := loadPolicy(t, "b.yaml", data)
		if err == nil {
			t.Errorf("broken kind %d loaded:\n%s", k, data)
			continue
		}
		if !regexp.MustCompile(`b\.yaml:\d+:\d+`).MatchString(err.Error()) {
			t.Errorf("broken kind %d: error without file:line:col: %v", k, err)
		}
	}
}

// versionRequest sends one request and returns the version that served
// it, or an error if it failed or the two stamps differ.
func versionRequest(ctx context.Context, c *http.Client, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return 0, fmt.Errorf("reading body: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d: %q", res.StatusCode, trim(string(body)))
	}
	var s seen
	if err := json.Unmarshal(body, &s); err != nil {
		return 0, fmt.Errorf("body is not the echo: %q", trim(string(body)))
	}
	up := s.Header.Values("X-Policy-Version")
	down := res.Header.Values("X-Policy-Version")
	if len(up) != 1 || len(down) != 1 {
		return 0, fmt.Errorf("version stamps: upstream %q, client %q; want one each", up, down)
	}
	if up[0] != down[0] {
		return 0, fmt.Errorf("mixed versions: request phase %s, response phase %s", up[0], down[0])
	}
	return strconv.Atoi(up[0])
}

// renameSave replaces path atomically, as editors and config management
// do: write a temporary file beside it, then rename it over.
func renameSave(t testing.TB, dir, path, data string) {
	t.Helper()
	f, err := os.CreateTemp(dir, ".policy-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		t.Fatal(err)
	}
}

// overwrite changes the file in place (same inode) with one write of the
// same length. It does not truncate: os.WriteFile truncates first, and a
// watcher that reads between the truncation and the write sees an empty
// file, which the engine loads as an empty (valid, rule-less) policy.
func overwrite(t testing.TB, path, data string) {
	t.Helper()
	if len(data) != fileSize {
		t.Fatalf("overwrite: %d bytes, want %d", len(data), fileSize)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(data), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
