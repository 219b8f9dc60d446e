package upstream

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Start runs active health checks until ctx is done or Close is called:
// one goroutine owned by the pool, checking all targets concurrently once
// per Interval (the first round immediately). Targets start healthy, as in
// nginx, so traffic flows before the first verdict. Without a HealthCheck
// it does nothing. Calling it again, or after Close, is a no-op.
func (p *Pool) Start(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hc == nil || p.started || p.closed {
		return
	}
	p.started = true
	p.done = make(chan struct{})
	ctx, p.cancel = context.WithCancel(ctx)
	checkers := make([]*checker, len(p.targets))
	for i, t := range p.targets {
		checkers[i] = newChecker(t, p.hc, p.tlsConf)
	}
	go p.run(ctx, checkers)
}

func (p *Pool) run(ctx context.Context, checkers []*checker) {
	defer close(p.done)
	defer func() {
		for _, c := range checkers {
			c.close()
		}
	}()
	tick := time.NewTicker(p.hc.Interval)
	defer tick.Stop()
	for {
		p.round(ctx, checkers)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// round checks every target in parallel and waits for all, so a slow
// target cannot delay the others' verdicts by more than Timeout.
func (p *Pool) round(ctx context.Context, checkers []*checker) {
	results := make([]error, len(checkers))
	var wg sync.WaitGroup
	for i, c := range checkers {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, p.hc.Timeout)
			defer cancel()
			results[i] = c.check(cctx)
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // shutting down: cancelled checks say nothing about targets
	}
	for i, c := range checkers {
		p.verdict(c.t, results[i])
	}
}

// verdict applies one check result with the Healthy/Unhealthy thresholds.
func (p *Pool) verdict(t *Target, err error) {
	if err == nil {
		t.badRun = 0
		t.okRun++
		if t.down.Load() && t.okRun >= p.hc.Healthy {
			t.down.Store(false)
			p.log.Info("upstream healthy", "upstream", t.String(), "passes", t.okRun)
			p.notify(t, true)
		}
		return
	}
	t.okRun = 0
	t.badRun++
	if !t.down.Load() && t.badRun >= p.hc.Unhealthy {
		t.down.Store(true)
		p.log.Warn("upstream unhealthy", "upstream", t.String(), "fails", t.badRun, "err", err)
		p.notify(t, false)
	}
}

// checker probes one target over the same kind of transport the proxy
// uses for it.
type checker struct {
	t      *Target
	path   string
	client *http.Client // nil for TCP checks
	tr     *http.Transport
}

func newChecker(t *Target, hc *HealthCheck, tlsConf *tls.Config) *checker {
	c := &checker{t: t, path: hc.Path}
	if hc.Path == "" || t.Scheme == "tcp" {
		return c
	}
	var d net.Dialer
	// Keep-alives off: every probe must prove the target still accepts
	// connections, and nothing is left open between rounds.
	tr := &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, t.Network, t.Addr)
		},
	}
	switch t.Scheme {
	case "https":
		var tc *tls.Config
		if tlsConf != nil {
			tc = tlsConf.Clone()
		} else {
			tc = &tls.Config{}
		}
		tc.ServerName = t.ServerName
		tr.TLSClientConfig = tc
		tr.ForceAttemptHTTP2 = true
	case "h2c":
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	c.tr = tr
	c.client = &http.Client{
		Transport: tr,
		// A redirect is a pass (3xx): do not follow it elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

func (c *checker) check(ctx context.Context) error {
	if c.client == nil {
		var d net.Dialer
		conn, err := d.DialContext(ctx, c.t.Network, c.t.Addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	scheme, host := "http", c.t.Addr
	switch c.t.Scheme {
	case "https":
		scheme = "https"
	case "unix":
		host = "localhost"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+host+c.path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "sluice-health-check")
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("health check %s: status %d", c.path, resp.StatusCode)
	}
	return nil
}

func (c *checker) close() {
	if c.tr != nil {
		c.tr.CloseIdleConnections()
	}
}
