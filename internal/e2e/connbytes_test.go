package e2e

// conn.bytes_in and conn.bytes_out count the connection's bytes from and
// to the client so far, through the real listener.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

const connBytesPolicy = `
on_http_response:
  - actions:
      - type: add-headers
        config:
          headers:
            x-bytes-in: "${conn.bytes_in}"
            x-bytes-out: "${conn.bytes_out}"
`

func TestConnBytes(t *testing.T) {
	e := start(t, ep{URL: "http://app.test", Policy: connBytesPolicy})
	c, err := net.Dial("tcp", e.addr(""))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	// Count what the client reads off the wire as it goes.
	cr := &countingReader{r: br}
	rd := bufio.NewReader(cr)

	var sent, received int64
	for i, req := range []string{
		"GET /one HTTP/1.1\r\nHost: app.test\r\n\r\n",
		"GET /two HTTP/1.1\r\nHost: app.test\r\nX-Padding: " + fmt.Sprintf("%0100d", 0) + "\r\n\r\n",
	} {
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		sent += int64(len(req))
		res, err := http.ReadResponse(rd, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		_, err = io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		in, _ := strconv.ParseInt(res.Header.Get("X-Bytes-In"), 10, 64)
		out, _ := strconv.ParseInt(res.Header.Get("X-Bytes-Out"), 10, 64)
		// In on_http_response the whole request was read and none of this
		// answer written yet.
		if in != sent {
			t.Errorf("request %d: conn.bytes_in = %d, want %d (every request byte so far)", i+1, in, sent)
		}
		if out != received {
			t.Errorf("request %d: conn.bytes_out = %d, want %d (the earlier answers)", i+1, out, received)
		}
		received = cr.n - int64(rd.Buffered())
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
