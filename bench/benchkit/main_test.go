package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The scripts hand the generated pair to sluice, nginx and Caddy, so it
// must load as a TLS key pair and cover 127.0.0.1.
func TestCertLoadsAndCoversLoopback(t *testing.T) {
	dir := t.TempDir()
	if err := run([]string{"cert", dir}); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if pair.Leaf == nil {
		t.Fatal("no leaf")
	}
	if err := pair.Leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
}

func TestFreePortsAreDistinctAndBindable(t *testing.T) {
	ports, err := freePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d twice", p)
		}
		seen[p] = true
	}
}

func TestWaitSeesListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := run([]string{"wait", l.Addr().String(), "2"}); err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if err := run([]string{"wait", addr, "0.2"}); err == nil {
		t.Fatal("wait succeeded on a closed port")
	}
}

func TestBadUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"ports", "0"}, {"ports", "x"}, {"wait"}, {"cert"}} {
		if err := run(args); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}

// serve answers 1 KiB over HTTP/1.1 and over h2 with TLS.
func TestServeAnswersBothProtocols(t *testing.T) {
	dir := t.TempDir()
	if err := run([]string{"cert", dir}); err != nil {
		t.Fatal(err)
	}
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	plain, secure := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	go run([]string{"serve", plain, secure, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")})
	for _, a := range []string{plain, secure} {
		if err := waitListen(a, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	for _, u := range []string{"http://" + plain + "/1k", "https://" + secure + "/1k"} {
		res, err := (&http.Client{Transport: tr}).Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		wantProto := 1
		if strings.HasPrefix(u, "https") {
			wantProto = 2
		}
		if res.StatusCode != 200 || len(body) != 1024 || res.ProtoMajor != wantProto {
			t.Errorf("%s: %d, %d bytes, HTTP/%d", u, res.StatusCode, len(body), res.ProtoMajor)
		}
	}
}

// Both floor proxies must really proxy what the bench sends: keep-alive
// GETs answered with a Content-Length, each getting its own answer, on
// several connections at once.
func TestFloorsProxyKeepAliveGets(t *testing.T) {
	be := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := strings.Repeat(r.URL.Path, 3000) // larger than one read
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		io.WriteString(w, b)
	})}
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go be.Serve(bl)
	defer be.Close()
	for name, run := range map[string]func(string, string) error{"floor": floor, "evfloor": evfloor} {
		t.Run(name, func(t *testing.T) {
			ports, err := freePorts(1)
			if err != nil {
				t.Fatal(err)
			}
			addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
			go run(addr, bl.Addr().String())
			if err := waitListen(addr, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 4}}
			var wg sync.WaitGroup
			for i := 0; i < 4; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for _, p := range []string{"/a", "/bb", "/a", "/ccc"} {
						res, err := c.Get("http://" + addr + p)
						if err != nil {
							t.Error(err)
							return
						}
						b, _ := io.ReadAll(res.Body)
						res.Body.Close()
						if string(b) != strings.Repeat(p, 3000) {
							t.Errorf("%s: got %d bytes %.20q", p, len(b), b)
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}
