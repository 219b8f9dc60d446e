package proxy

import "strings"

// Path normalization, as nginx does before it matches locations: what a
// policy sees in req.url.path has no dot segments ("/./admin",
// "/x/../admin", "/%2e/admin") and no runs of slashes ("//admin"), so a
// rule on "/admin" cannot be walked around by spelling the path another
// way that most upstreams resolve to "/admin". The upstream still gets the
// path as the client sent it (nginx's proxy_pass without a URI does the
// same) unless a policy rewrote it.

// normalizePath removes dot segments (RFC 3986 §5.2.4), counting
// percent-encoded dots ("%2e", RFC 3986 §6.2.2.2) as dots, and merges
// runs of slashes. p is an escaped path; one that does not start with "/"
// ("*") is returned as is, and so is one with nothing to normalize.
func normalizePath(p string) string {
	if len(p) == 0 || p[0] != '/' || !strings.Contains(p, "//") && !strings.Contains(p, "/.") &&
		!strings.Contains(p, "%2e") && !strings.Contains(p, "%2E") {
		return p
	}
	parts := strings.Split(p[1:], "/")
	out := make([]string, 0, len(parts))
	trailing := false
	for i, seg := range parts {
		last := i == len(parts)-1
		switch dotSegment(seg) {
		case 1:
			trailing = trailing || last
			continue
		case 2:
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			trailing = trailing || last
			continue
		}
		if seg == "" {
			trailing = trailing || last
			continue
		}
		out = append(out, seg)
	}
	n := "/" + strings.Join(out, "/")
	if trailing && len(out) > 0 {
		n += "/"
	}
	if n == p {
		return p
	}
	return n
}

// dotSegment says whether seg is "." (1) or ".." (2), each dot spelled
// "." or "%2e" in either case; 0 otherwise.
func dotSegment(seg string) int {
	n := 0
	for len(seg) > 0 {
		switch {
		case seg[0] == '.':
			seg = seg[1:]
		case len(seg) >= 3 && seg[0] == '%' && seg[1] == '2' && (seg[2] == 'e' || seg[2] == 'E'):
			seg = seg[3:]
		default:
			return 0
		}
		if n++; n > 2 {
			return 0
		}
	}
	return n
}
