package main

import (
	"bytes"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Answer is what came back on stream 1.
type h2Answer struct {
	status int // 0: none
	body   string
	reset  bool // RST_STREAM or GOAWAY instead of (or after) an answer
}

// h2Exchange opens an h2c (prior knowledge) connection, sends one request
// made of raw header fields and optional DATA, and reads stream 1's fate.
// Fields go through hpack as given, however invalid.
func h2Exchange(t *testing.T, addr string, fields [][2]string, data string) h2Answer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range fields {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: data == ""})
	if data != "" {
		fr.WriteData(1, true, []byte(data))
	}
	return h2Read(fr)
}

// h2Read reads frames until stream 1 ends, is reset or the connection
// goes away, acknowledging the peer's settings.
func h2Read(fr *http2.Framer) h2Answer {
	var a h2Answer
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			a.reset = true // connection closed
			return a
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 && a.status == 0 {
				a.status, _ = strconv.Atoi(f.PseudoValue("status"))
			}
			if f.StreamID == 1 && f.StreamEnded() {
				return a
			}
		case *http2.DataFrame:
			if f.StreamID == 1 {
				a.body += string(f.Data())
				if f.StreamEnded() {
					return a
				}
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				a.reset = true
				return a
			}
		case *http2.GoAwayFrame:
			a.reset = true
			return a
		}
	}
}

// HTTP/2 requests that would smuggle when downgraded to HTTP/1.1 for the
// upstream (H2.CL, H2.TE, CRLF in fields, spaces in :path): refused, or
// forwarded so that the upstream sees exactly one well-framed request.
func TestHostileH2Downgrade(t *testing.T) {
	t.Parallel()
	b := newRecBackend(t)
	e := startEdge(t, b.addr(), "")
	req := func(method string, extra ...[2]string) [][2]string {
		return append([][2]string{{":method", method}, {":scheme", "http"}, {":authority", "h.test"}, {":path", "/"}}, extra...)
	}
	withPath := func(path string) [][2]string {
		return [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "h.test"}, {":path", path}}
	}
	for _, tc := range []struct {
		name   string
		fields [][2]string
		data   string
		ok     []int // acceptable statuses besides a reset
	}{
		{"content-length shorter than data", req("POST", [2]string{"content-length", "5"}), "hello" + smuggled, []int{400}},
		{"content-length 0 with data", req("POST", [2]string{"content-length", "0"}), smuggled, []int{400}},
		{"transfer-encoding chunked", req("POST", [2]string{"transfer-encoding", "chunked"}), "0\r\n\r\n" + smuggled, []int{400}},
		{"CRLF in a value", req("GET", [2]string{"x-a", "b\r\nTransfer-Encoding: chunked"}), "", []int{400}},
		{"CRLF in :authority", [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "h.test\r\nX: y"}, {":path", "/"}}, "", []int{400}},
		{"upper-case name", req("GET", [2]string{"X-Upper", "1"}), "", []int{400}},
		{"connection header", req("GET", [2]string{"connection", "keep-alive"}), "", []int{400}},
		{"space in :path", withPath("/ HTTP/1.1\r\nHost: h.test\r\n\r\nGET /smuggled"), "", []int{400}},
		// Re-encoded as /a%20b for the upstream: a normalisation, no harm.
		{"space in :path, no CRLF", withPath("/a b"), "", []int{200, 400}},
		{"empty :path", withPath(""), "", []int{400}},
		// Targets the HTTP/1.1 engine refuses are refused over h2 too:
		// /a#frag would reach the upstream as /a%23frag, another resource.
		{"fragment in :path", withPath("/a#frag"), "", []int{400}},
		{"8-bit byte in :path", withPath("/caf\xc3\xa9"), "", []int{400}},
		{"absolute URI as :path", withPath("http://other.test/abs"), "", []int{400}},
		{"* outside OPTIONS", withPath("*"), "", []int{400}},
		{"content-length +5", req("POST", [2]string{"content-length", "+5"}), "hello", []int{400}},
		{"content-length 5, 5", req("POST", [2]string{"content-length", "5, 5"}), "hello", []int{400}},
		{"two content-lengths", req("POST", [2]string{"content-length", "5"}, [2]string{"content-length", "6"}), "hello", []int{400}},
		{"valid control", req("POST", [2]string{"content-length", "5"}), "hello", []int{200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := b.mark()
			a := h2Exchange(t, e.addr, tc.fields, tc.data)
			if !a.reset && !slices.Contains(tc.ok, a.status) {
				t.Errorf("answered %d %q, want a reset or one of %v", a.status, a.body, tc.ok)
			}
			if code, _, _ := get(t, e.addr, "h.test", "/probe"); code != 200 {
				t.Errorf("probe: %d", code)
			}
			// The upstream may have started on the request before the
			// stream broke; it must never see what the DATA smuggled.
			for _, r := range b.since(m) {
				if r.Path == "/smuggled" || strings.Contains(r.Body, "smuggled") || r.Path == "/" && a.status == 200 && r.Body != "" && r.Body != "hello" {
					t.Errorf("backend got %s %s (body %q) for an answer %d reset=%v", r.Method, r.Path, r.Body, a.status, a.reset)
				}
			}
		})
	}
}

// A cleartext "Upgrade: h2c" GET is switched to HTTP/2 (101, then the
// answer on stream 1), end to end through the binary.
func TestHostileH2CUpgrade(t *testing.T) {
	t.Parallel()
	b := newRecBackend(t)
	e := startEdge(t, b.addr(), "")
	c := dialRaw(t, e.addr)
	c.send("GET /up HTTP/1.1\r\nHost: h.test\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
	res, _, err := c.response("GET")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", res.StatusCode)
	}
	c.send(http2.ClientPreface)
	fr := http2.NewFramer(c.c, c.br)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.WriteSettings()
	if a := h2Read(fr); a.reset || a.status != 200 || a.body != "ok /up 0" {
		t.Fatalf("stream 1 after the upgrade: %+v", a)
	}
}
