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

// watchLocked subscribes to the current pairs' files and cancels the
// subscriptions of files no longer used. Subscriptions (not Watcher.Add)
// keep stores sharing a file independent: two endpoints with one wildcard
// certificate, or an endpoint and its replacement during a config reload.
// Caller holds s.mu.
func (s *Store) watchLocked() error {
	want := map[string]bool{}
	for _, p := range s.pairs {
		want[p.Cert], want[p.Key] = true, true
	}
	for f, cancel := range s.watched {
		if !want[f] {
			cancel()
			delete(s.watched, f)
		}
	}
	if s.watched == nil {
		s.watched = map[string]func(){}
	}
	for f := range want {
		if s.watched[f] != nil {
			continue
		}
		cancel, err := s.watcher.Subscribe(f, s.changed)
		if err != nil {
			return err
		}
		s.watched[f] = cancel
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
	s.warnValidity(t)
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
	for _, cancel := range s.watched {
		cancel()
	}
	s.watched = nil
}
