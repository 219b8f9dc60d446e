package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/internal/reload"
)

// Pair names one certificate chain and its private key, as PEM files.
type Pair struct {
	Cert, Key string
}

// ErrNoCertificate is returned by GetCertificate before any certificate was
// loaded.
var ErrNoCertificate = errors.New("certs: no certificate loaded")

// Settle is how long a Store waits after the last file event before
// reloading, so that a cert and key replaced one after the other are read
// as a matching pair instead of logging a transient mismatch.
const Settle = 200 * time.Millisecond

// Store holds the live certificates. GetCertificate is lock-free; loads
// build a complete new table and swap it in one step.
type Store struct {
	log *slog.Logger
	cur atomic.Pointer[table]

	mu      sync.Mutex
	pairs   []Pair
	watcher *reload.Watcher
	watched map[string]func() // file → cancel of its subscription
	timer   *time.Timer
	lastErr string // last reload error logged, to log each failure once
	gen     uint64 // bumped by Load so a slower reload cannot undo it
	closed  bool
}

// table is one immutable generation of certificates.
type table struct {
	exact    map[string]*tls.Certificate // lower-case DNS name
	wildcard map[string]*tls.Certificate // "example.com" for *.example.com
	def      *tls.Certificate
	names    []string
	files    map[*tls.Certificate]string // certificate file, for warnings
}

// NewStore returns an empty Store; log nil means slog.Default().
func NewStore(log *slog.Logger) *Store {
	if log == nil {
		log = slog.Default()
	}
	return &Store{log: log}
}

// Load reads and parses every pair, then swaps them in at once. On any
// error nothing changes and the error names the file at fault. The first
// pair is the default for clients whose SNI matches no certificate; when
// several pairs claim a name, the earlier one wins.
func (s *Store) Load(pairs []Pair) error {
	t, err := build(pairs)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("certs: store closed")
	}
	s.pairs = slices.Clone(pairs)
	s.gen++
	s.cur.Store(t)
	s.warnValidity(t)
	s.lastErr = ""
	if s.watcher != nil {
		if err := s.watchLocked(); err != nil {
			// Unlike a bad file this cannot be undone by keeping the old
			// table: the new certificates are fine, only reloads are not.
			return fmt.Errorf("certs: loaded, but changes will not be seen: %w", err)
		}
	}
	return nil
}

func build(pairs []Pair) (*table, error) {
	if len(pairs) == 0 {
		return nil, errors.New("certs: no certificate pairs")
	}
	t := &table{
		exact:    map[string]*tls.Certificate{},
		wildcard: map[string]*tls.Certificate{},
		files:    map[*tls.Certificate]string{},
	}
	for _, p := range pairs {
		c, err := loadPair(p)
		if err != nil {
			return nil, err
		}
		t.files[c] = p.Cert
		if t.def == nil {
			t.def = c
		}
		for _, name := range leafNames(c.Leaf) {
			if suffix, ok := strings.CutPrefix(name, "*."); ok {
				if _, dup := t.wildcard[suffix]; !dup {
					t.wildcard[suffix] = c
					t.names = append(t.names, name)
				}
			} else if _, dup := t.exact[name]; !dup {
				t.exact[name] = c
				t.names = append(t.names, name)
			}
		}
	}
	return t, nil
}

// loadPair reads one pair and blames the right file: a missing or
// truncated certificate, a missing or truncated key, or a key that does not
// belong to the certificate.
func loadPair(p Pair) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(p.Cert)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	keyPEM, err := os.ReadFile(p.Key)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	if err := checkPEM(certPEM, "CERTIFICATE"); err != nil {
		return nil, fmt.Errorf("certs: %s: %w", p.Cert, err)
	}
	if err := checkPEM(keyPEM, "PRIVATE KEY"); err != nil {
		return nil, fmt.Errorf("certs: %s: %w", p.Key, err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: %s with key %s: %w", p.Cert, p.Key, err)
	}
	if c.Leaf == nil { // filled by X509KeyPair since Go 1.23; keep safe
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certs: %s: %w", p.Cert, err)
		}
	}
	return &c, nil
}

// checkPEM makes sure data holds at least one complete PEM block whose
// type ends in want, and no trailing partial block (a half-written file).
func checkPEM(data []byte, want string) error {
	found := false
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if strings.HasSuffix(b.Type, want) {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("no PEM %s block found", want)
	}
	if bytes.Contains(rest, []byte("-----BEGIN")) {
		return errors.New("truncated PEM block (file half-written?)")
	}
	return nil
}

// expiryWarning is how close to NotAfter a certificate gets a warning on
// each load: enough time for a renewal that failed silently to be fixed.
const expiryWarning = 14 * 24 * time.Hour

// warnValidity logs certificates that are expired, not yet valid or about
// to expire: serving them still beats serving nothing, but someone should
// know.
func (s *Store) warnValidity(t *table) {
	now := time.Now()
	for c, file := range t.files {
		leaf := c.Leaf
		switch {
		case now.After(leaf.NotAfter):
			s.log.Warn("certificate expired", "file", file, "not_after", leaf.NotAfter)
		case now.Before(leaf.NotBefore):
			s.log.Warn("certificate not yet valid", "file", file, "not_before", leaf.NotBefore)
		case leaf.NotAfter.Sub(now) < expiryWarning:
			s.log.Warn("certificate expires soon", "file", file, "not_after", leaf.NotAfter)
		}
	}
}

// leafNames is the names a certificate answers for: its DNS SANs, or its
// CN when it has none (legacy certificates).
func leafNames(leaf *x509.Certificate) []string {
	names := leaf.DNSNames
	if len(names) == 0 && leaf.Subject.CommonName != "" {
		names = []string{leaf.Subject.CommonName}
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		out = append(out, strings.ToLower(strings.TrimSuffix(n, ".")))
	}
	return out
}

// GetCertificate is a tls.Config.GetCertificate: exact SNI match, then a
// wildcard one level up (*.example.com for a.example.com), then the first
// pair.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	t := s.cur.Load()
	if t == nil {
		return nil, ErrNoCertificate
	}
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if name != "" {
		if c := t.exact[name]; c != nil {
			return c, nil
		}
		if i := strings.IndexByte(name, '.'); i > 0 {
			if c := t.wildcard[name[i+1:]]; c != nil {
				return c, nil
			}
		}
	}
	return t.def, nil
}

// Names returns the DNS names served (wildcards as *.example.com), in load
// order.
func (s *Store) Names() []string {
	if t := s.cur.Load(); t != nil {
		return slices.Clone(t.names)
	}
	return nil
}

// Interface guard: GetCertificate fits tls.Config.GetCertificate.
var _ func(*tls.ClientHelloInfo) (*tls.Certificate, error) = (*Store)(nil).GetCertificate
