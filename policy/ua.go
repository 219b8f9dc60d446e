package policy

// A small User-Agent parser for req.user_agent.*: enough to tell the common
// browsers, operating systems, mobiles and bots apart without a regex
// database. It runs only when an expression reads one of the fields.

import "strings"

type userAgent struct {
	Name, Version, OS, OSVersion, Device, URL string
	Bot, Mobile, Tablet, Desktop              bool
}

// botMarkers are lower-case substrings that identify crawlers and tools.
var botMarkers = []string{
	"bot", "crawl", "spider", "slurp", "curl/", "wget/", "python-requests",
	"python-urllib", "go-http-client", "httpclient", "okhttp", "libwww",
	"headless", "facebookexternalhit", "mediapartners", "scrapy", "httpie",
	"postman", "java/", "node-fetch", "axios/", "monitor", "lighthouse",
}

// browsers in match order: more specific tokens first (Edge and Opera
// contain "Chrome", Chrome contains "Safari").
var browsers = []struct{ token, name string }{
	{"Edg/", "Edge"}, {"EdgA/", "Edge"}, {"EdgiOS/", "Edge"}, {"Edge/", "Edge"},
	{"OPR/", "Opera"}, {"Opera/", "Opera"}, {"SamsungBrowser/", "Samsung Internet"},
	{"YaBrowser/", "Yandex Browser"}, {"Vivaldi/", "Vivaldi"},
	{"Firefox/", "Firefox"}, {"FxiOS/", "Firefox"}, {"CriOS/", "Chrome"},
	{"Chrome/", "Chrome"}, {"Chromium/", "Chromium"}, {"Version/", "Safari"},
	{"MSIE ", "Internet Explorer"}, {"Trident/", "Internet Explorer"},
}

func parseUserAgent(ua string) userAgent {
	var u userAgent
	if ua == "" {
		return u
	}
	low := strings.ToLower(ua)
	for _, m := range botMarkers {
		if strings.Contains(low, m) {
			u.Bot = true
			break
		}
	}
	if i := strings.Index(ua, "http"); i >= 0 {
		end := strings.IndexAny(ua[i:], " ;)")
		if end < 0 {
			end = len(ua) - i
		}
		u.URL = strings.TrimPrefix(ua[i:i+end], "+")
	}

	// Operating system and device.
	switch {
	case strings.Contains(ua, "iPhone"):
		u.OS, u.Device, u.Mobile = "iOS", "iPhone", true
		u.OSVersion = versionAfter(ua, "iPhone OS ", "_")
	case strings.Contains(ua, "iPad"):
		u.OS, u.Device, u.Tablet = "iOS", "iPad", true
		u.OSVersion = versionAfter(ua, "CPU OS ", "_")
	case strings.Contains(ua, "Android"):
		u.OS = "Android"
		u.OSVersion = versionAfter(ua, "Android ", ".")
		if strings.Contains(ua, "Mobile") {
			u.Mobile = true
		} else {
			u.Tablet = true
		}
	case strings.Contains(ua, "Windows"):
		u.OS = "Windows"
		u.OSVersion = versionAfter(ua, "Windows NT ", ".")
	case strings.Contains(ua, "Mac OS X"):
		u.OS = "macOS"
		u.OSVersion = versionAfter(ua, "Mac OS X ", "_")
	case strings.Contains(ua, "CrOS"):
		u.OS = "ChromeOS"
	case strings.Contains(ua, "Linux"):
		u.OS = "Linux"
	}
	u.Desktop = !u.Mobile && !u.Tablet && !u.Bot && u.OS != ""

	// A crawler is named by its own token, even when it also carries a
	// browser's (Googlebot's smartphone agent has Chrome/ in it).
	if u.Bot {
		if n, v, ok := botName(ua); ok {
			u.Name, u.Version = n, v
			return u
		}
	}
	// Browser (or, for tools, the first product token).
	for _, b := range browsers {
		if i := strings.Index(ua, b.token); i >= 0 {
			if b.token == "Version/" && !strings.Contains(ua, "Safari") {
				continue
			}
			u.Name = b.name
			u.Version = token(ua[i+len(b.token):])
			return u
		}
	}
	first := token(ua)
	name, ver, _ := strings.Cut(first, "/")
	u.Name, u.Version = name, ver
	return u
}

// botName finds a crawler's product token: the first one with "bot" in
// its name ("compatible; Googlebot/2.1"), else the one the "compatible"
// section names ("compatible; ChatGPT-User/1.0; +https://openai.com/bot").
// The crawler's info URL, which often holds "bot" too, is never a name.
func botName(ua string) (name, version string, ok bool) {
	parts := strings.FieldsFunc(ua, func(r rune) bool { return r == ';' || r == '(' || r == ')' || r == ' ' })
	var compat string
	for i, part := range parts {
		if strings.HasPrefix(part, "+") || strings.Contains(part, "://") {
			continue
		}
		n, v, _ := strings.Cut(part, "/")
		if n == "" {
			continue
		}
		if strings.Contains(strings.ToLower(n), "bot") {
			return n, v, true
		}
		if compat == "" && i > 0 && strings.EqualFold(parts[i-1], "compatible") && strings.Contains(part, "/") {
			compat = part
		}
	}
	if compat != "" {
		n, v, _ := strings.Cut(compat, "/")
		return n, v, true
	}
	return "", "", false
}

// token returns s up to the first space, ';' or ')'.
func token(s string) string {
	if i := strings.IndexAny(s, " ;)"); i >= 0 {
		return s[:i]
	}
	return s
}

// versionAfter finds "marker1_2_3" and returns "1.2.3" (sep is the
// separator used in the UA, normalised to dots).
func versionAfter(ua, marker, sep string) string {
	i := strings.Index(ua, marker)
	if i < 0 {
		return ""
	}
	v := token(ua[i+len(marker):])
	return strings.ReplaceAll(v, sep, ".")
}
