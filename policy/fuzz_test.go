package policy

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the parser and runs what parses: no
// input may panic.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/errors/*.*")
	for _, s := range seeds {
		if data, err := os.ReadFile(s); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(versionPolicy("fuzz", 1)))
	f.Add([]byte(`{"on_http_request":[{"expressions":["req.url.path.startsWith('/a')"],"actions":[{"type":"t-respond","config":{"status_code":403,"body":"${req.url}"}}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data)
		if err != nil {
			for _, e := range Errors(err) {
				if e.Error() == "" {
					t.Fatal("empty error")
				}
			}
			return
		}
		defer p.Close()
		c, x := fixture()
		_ = p.RunConnect(c)
		x.Res = nil
		_ = p.RunRequest(x)
		if x.Res == nil {
			x.Res = newExchange().Res
		}
		if x.Res != nil {
			_ = p.RunResponse(x)
		}
		takeRecorded()
	})
}

// FuzzTemplate compiles and evaluates arbitrary interpolation strings.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		"plain", "${req.method}", "$${x}", "a ${'}'} b", "${", "${}", "${{'a': {'b': 1}}}",
		"x ${conn.client_ip} ${req.headers['x-api-key'][0]}", "${1/0}", "${'\\'}'}", "${\"}\"}",
		"${req.url.query_params}", "${[1, 2.5, true, null]}", "${timestamp(time.now)}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		comp := newCompiler("fuzz.yaml", []byte(s))
		tp, err := comp.template(s, nil)
		if err != nil {
			return
		}
		_, x := fixture()
		st := &State{Phase: OnHTTPRequest, X: x, Conn: x.Conn}
		defer st.release()
		_, _ = tp.Eval(st)
		_, _ = tp.EvalValue(st)
		if lit, ok := tp.Static(); ok && tp.Raw() == lit && len(tp.parts) > 1 {
			t.Fatal("static template with several parts")
		}
	})
}
