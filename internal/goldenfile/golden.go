// Package goldenfile is the schema of the expectation files that sit beside
// Traffic Policy examples (ngrok's documented policies, examples/policies):
// <name>.expect.yaml says which request to send, how the upstream answers
// and what must come out. policy/actions runs them in process and
// internal/e2e through a real listener, from the same files.
package goldenfile

// File is one expectation file.
type File struct {
	Policy  string `yaml:"policy"` // relative to the expect file; default <name>.yaml, else <name>.json
	Source  string `yaml:"source"`
	Note    string `yaml:"note"`
	Skip    string `yaml:"skip"` // why this example cannot run here (kept, reported, not dropped)
	Request struct {
		Method       string            `yaml:"method"`
		URL          string            `yaml:"url"`
		Client       string            `yaml:"client"`
		Headers      map[string]string `yaml:"headers"`
		Body         string            `yaml:"body"`
		BodyRepeat   []any             `yaml:"body_repeat"` // [text, count]
		ConnStart    string            `yaml:"conn_start"`
		GeoCity      string            `yaml:"geo_city"`
		GeoCountry   string            `yaml:"geo_country"`
		GeoCC        string            `yaml:"geo_country_code"`
		GeoIsEU      bool              `yaml:"geo_is_eu"`
		GeoASOrg     string            `yaml:"geo_as_org"`
		GeoContinent string            `yaml:"geo_continent"`
		Repeat       int               `yaml:"repeat"`
		Length       int               `yaml:"content_length"` // a body of this many bytes
	} `yaml:"request"`
	Upstream struct {
		Status     int               `yaml:"status"`
		Headers    map[string]string `yaml:"headers"`
		Body       string            `yaml:"body"`
		BodyRepeat []any             `yaml:"body_repeat"` // [text, count]
	} `yaml:"upstream"`
	Expect struct {
		LoadError             string            `yaml:"load_error"`
		Closed                bool              `yaml:"closed"`
		Status                int               `yaml:"status"`
		Headers               map[string]string `yaml:"headers"`
		HeadersPresent        []string          `yaml:"headers_present"`
		HeadersAbsent         []string          `yaml:"headers_absent"`
		Body                  *string           `yaml:"body"`
		BodyRegexp            string            `yaml:"body_regexp"`
		DecodedBodyLength     int               `yaml:"decoded_body_length"`
		Upstream              *bool             `yaml:"upstream"`
		UpstreamURI           string            `yaml:"upstream_uri"`
		UpstreamHost          string            `yaml:"upstream_host"`
		UpstreamHeaders       map[string]string `yaml:"upstream_headers"`
		UpstreamHeadersAbsent []string          `yaml:"upstream_headers_absent"`
		ForwardInternal       string            `yaml:"forward_internal"`
		// ForwardInternalOneOf: forwarded to one of these (a choice the
		// example makes by the clock, say).
		ForwardInternalOneOf []string       `yaml:"forward_internal_one_of"`
		Log                  string         `yaml:"log"`
		Vars                 map[string]any `yaml:"vars"`
	} `yaml:"expect"`
}
