package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchkit:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: benchkit cert DIR | ports N | wait ADDR [SECS] | serve ADDR TLSADDR CERT KEY | floor ADDR UPSTREAM | evfloor ADDR UPSTREAM")
	}
	switch args[0] {
	case "cert":
		if len(args) != 2 {
			return errors.New("usage: benchkit cert DIR")
		}
		return writeCert(args[1])
	case "ports":
		n := 1
		if len(args) > 1 {
			var err error
			if n, err = strconv.Atoi(args[1]); err != nil || n < 1 || n > 64 {
				return fmt.Errorf("ports: bad count %q (1-64)", args[1])
			}
		}
		ports, err := freePorts(n)
		if err != nil {
			return err
		}
		for _, p := range ports {
			fmt.Println(p)
		}
		return nil
	case "serve":
		if len(args) != 5 {
			return errors.New("usage: benchkit serve ADDR TLSADDR CERT KEY")
		}
		return serve(args[1], args[2], args[3], args[4])
	case "floor":
		if len(args) != 3 {
			return errors.New("usage: benchkit floor ADDR UPSTREAM")
		}
		return floor(args[1], args[2])
	case "evfloor":
		if len(args) != 3 {
			return errors.New("usage: benchkit evfloor ADDR UPSTREAM")
		}
		return evfloor(args[1], args[2])
	case "wait":
		if len(args) < 2 {
			return errors.New("usage: benchkit wait ADDR [SECS]")
		}
		secs := 10.0
		if len(args) > 2 {
			var err error
			if secs, err = strconv.ParseFloat(args[2], 64); err != nil || secs <= 0 {
				return fmt.Errorf("wait: bad seconds %q", args[2])
			}
		}
		return waitListen(args[1], time.Duration(secs*float64(time.Second)))
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// writeCert writes a self-signed ECDSA certificate valid for the loopback
// names the benchmarks use. Clients run with -k / insecure, so no CA.
func writeCert(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, "cert.pem"), "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, "key.pem"), "PRIVATE KEY", keyDER, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

// freePorts asks the kernel for n distinct free ports. They are released
// before the caller binds them, so another process could take one in
// between; on a quiet test machine that race is rare and the scripts fail
// loudly (the server cannot bind) when it happens.
func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitListen polls addr until a TCP connect succeeds or d has passed: the
// servers under test give no other signal that they are ready.
func waitListen(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wait: %s not listening after %s: %w", addr, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serve answers every request with 1 KiB from Go's net/http itself: HTTP/1.1
// on addr, HTTP/2 over TLS on tlsAddr (net/http's bundled x/net/http2, the
// h2 server sluice uses). Measured like a proxy, it shows what Go's HTTP
// servers cost per request before any proxying.
func serve(addr, tlsAddr, certFile, keyFile string) error {
	body := make([]byte, 1024)
	for i := range body {
		body[i] = 'x'
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
	errc := make(chan error, 2)
	go func() { errc <- http.ListenAndServe(addr, h) }()
	go func() { errc <- http.ListenAndServeTLS(tlsAddr, certFile, keyFile, h) }()
	return <-errc
}
