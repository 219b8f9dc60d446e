package proxy

import "testing"

func TestNormalizePath(t *testing.T) {
	for in, want := range map[string]string{
		"/":                 "/",
		"/a/b":              "/a/b",
		"/a/b/":             "/a/b/",
		"/./admin":          "/admin",
		"/x/../admin":       "/admin",
		"/%2e/admin":        "/admin",
		"/%2E%2e/admin":     "/admin",
		"/.%2e/.%2E/admin":  "/admin",
		"//admin":           "/admin",
		"/a//b///c":         "/a/b/c",
		"/a/b/..":           "/a/",
		"/a/b/.":            "/a/b/",
		"/..":               "/",
		"/../../a":          "/a",
		"/a/./b/../c/":      "/a/c/",
		"/...":              "/...",
		"/a/.b/c":           "/a/.b/c",
		"/a/..b":            "/a/..b",
		"/a%2eb":            "/a%2eb",
		"/%2e%2e%2e":        "/%2e%2e%2e",
		"/a/%2e%2fb":        "/a/%2e%2fb",
		"*":                 "*",
		"/file.txt":         "/file.txt",
		"/a/b%2E/c":         "/a/b%2E/c",
		"/api/v1//users/./": "/api/v1/users/",
	} {
		if got := normalizePath(in); got != want {
			t.Errorf("normalizePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/a/./b/../c", "//x", "/%2e%2E/y", "/a/b/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		n := normalizePath(p)
		if len(p) == 0 || p[0] != '/' {
			if n != p {
				t.Fatalf("%q changed to %q", p, n)
			}
			return
		}
		if n[0] != '/' {
			t.Fatalf("%q -> %q does not start with /", p, n)
		}
		if again := normalizePath(n); again != n {
			t.Fatalf("not a fixed point: %q -> %q -> %q", p, n, again)
		}
	})
}
