package certs

import (
	"errors"
	"time"

	"github.com/sluicehq/sluice/internal/reload"
)

// Watch reloads all pairs whenever any of their files changes, as seen by
// w (which the caller runs). Files added by a later Load are watched too.
// A failed reload keeps the live certificates and logs the error once.
func (s *Store) Watch(w *reload.Watcher) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("certs: store closed")
	}
	s.watcher = w
	return s.watchLocked()
}

// watchLocked adds the current pairs' files to the watcher and drops the
// ones no longer used. Caller holds s.mu.
func (s *Store) watchLocked() error {
	want := map[string]bool{}
	for _, p := range s.pairs {
		want[p.Cert], want[p.Key] = true, true
	}
	for _, f := range s.watched {
		if !want[f] {
			s.watcher.Remove(f)
		}
	}
	s.watched = s.watched[:0]
	for f := range want {
		if err := s.watcher.Add(f, s.changed); err != nil {
			return err
		}
		s.watched = append(s.watched, f)
	}
	return nil
}

// changed coalesces file events: a cert and its key are usually replaced
// one after the other.
func (s *Store) changed(string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timer = time.AfterFunc(Settle, s.reload)
}

func (s *Store) reload() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	pairs, gen := s.pairs, s.gen
	s.mu.Unlock()

	t, err := build(pairs)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.gen != gen {
		return // a concurrent Load already published newer pairs
	}
	if err != nil {
		if msg := err.Error(); msg != s.lastErr {
			s.lastErr = msg
			s.log.Error("certificate reload failed; keeping the previous certificates", "err", err)
		}
		return
	}
	s.lastErr = ""
	s.cur.Store(t)
	s.log.Info("certificates reloaded", "names", t.names)
}

// Close stops watching. GetCertificate keeps serving the last certificates
// (handshakes in progress may still need them). Idempotent.
func (s *Store) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.watcher != nil {
		for _, f := range s.watched {
			s.watcher.Remove(f)
		}
	}
	s.watched = nil
}
