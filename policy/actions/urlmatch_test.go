package actions

import (
	"regexp"
	"testing"
)

// replaceAll's one-pass replacement must give what ReplaceAllString and
// FindStringSubmatch give, empty matches included.
func TestURLMatchAgreesWithRegexp(t *testing.T) {
	patterns := []string{`/(1[km])$`, `a*`, `^`, `$`, `x*`, `(a)|(b)`, `/v(\d+)/`, `(?P<first>[a-z]+)\.example\.com`, `é|`, `.`}
	inputs := []string{"", "http://127.0.0.1:19900/1k", "baaac", "https://api.example.com/v1/v2/users?q=a", "héllo", "ab"}
	tos := []string{"/$1", "X", "", "$first-$2-$$", "[$0]"}
	for _, p := range patterns {
		re := regexp.MustCompile(p)
		for _, in := range inputs {
			for _, to := range tos {
				out, loc := replaceAll(re, in, to)
				groups := match{src: in, loc: loc}.groups()
				want, wantGroups := in, re.FindStringSubmatch(in)
				if wantGroups != nil {
					want = re.ReplaceAllString(in, to)
				}
				if out != want || len(groups) != len(wantGroups) {
					t.Fatalf("%q on %q -> %q: got %q %q, want %q %q", p, in, to, out, groups, want, wantGroups)
				}
				for i := range groups {
					if groups[i] != wantGroups[i] {
						t.Fatalf("%q on %q: groups %q, want %q", p, in, groups, wantGroups)
					}
				}
			}
		}
	}
}
