package cli

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicehq/sluice/exchange"
	"github.com/sluicehq/sluice/internal/admin"
	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/reload"
	"github.com/sluicehq/sluice/policy"
	"github.com/sluicehq/sluice/proxy"
)

// runOptions are what `serve` adds to a Config: where it came from (to
// reload it) and flag overrides.
type runOptions struct {
	file      string   // "" for http/tcp/tls: nothing to reload but policies
	logFormat string   // overrides log.format when set
	logLevel  string   // overrides log.level when set
	sum       [32]byte // of the config file's text that cfg came from
}

// runner owns everything a running sluice holds: the proxy, the admin
// listener, the file watcher and the policy handles of the current config.
type runner struct {
	o      runOptions
	log    *slog.Logger
	level  *slog.LevelVar
	reg    *prometheus.Registry
	watch  *reload.Watcher
	srv    *proxy.Server
	adm    *admin.Server
	format string
	access string

	reloads *prometheus.CounterVec
	lastOK  prometheus.Gauge

	mu       sync.Mutex // serialises reloads
	cfg      *config.Config
	sum      [32]byte                  // of the config file last applied
	failed   [32]byte                  // of the last file that failed: logged once
	policies map[string]*policy.Handle // by policyKey, of the current config
	stopping bool                      // draining: reloads are ignored
}

// run starts sluice with cfg and blocks until SIGTERM/SIGINT drained it.
func run(cfg *config.Config, o runOptions, stdout, stderr io.Writer) int {
	r := &runner{o: o, level: new(slog.LevelVar), policies: map[string]*policy.Handle{}}
	r.format = firstNonEmpty(o.logFormat, cfg.Log.Format, "text")
	log, err := newLogger(stderr, r.format, r.level)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return exitFail
	}
	r.log = log
	_ = setLevel(r.level, firstNonEmpty(o.logLevel, cfg.Log.Level, "info"))
	r.access = cfg.Log.AccessLog
	accessLog, closeAccess, err := openAccessLog(cfg.Log.AccessLog, stdout, stderr)
	if err != nil {
		log.Error("cannot start", "err", inFile(cfg, err))
		return exitFail
	}
	defer closeAccess()

	r.reg = admin.NewRegistry()
	r.registerMetrics()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if r.watch, err = reload.NewWatcher(log); err != nil {
		log.Error("cannot start the file watcher", "err", err)
		return exitFail
	}
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); r.watch.Run(ctx) }()
	defer func() { cancel(); <-watchDone }()

	stop, hup, stopSignals := signals()
	defer stopSignals()

	r.adm = admin.New(r.reg)
	if cfg.Admin != "" {
		ln, err := net.Listen("tcp", cfg.Admin)
		if err != nil {
			log.Error("cannot start the admin listener", "addr", cfg.Admin, "err", err)
			return exitFail
		}
		log.Info("admin listening", "addr", ln.Addr().String())
		go func() {
			if err := r.adm.Serve(ln); err != nil {
				log.Error("admin listener failed", "err", err)
			}
		}()
		defer func() {
			sctx, scancel := context.WithTimeout(context.Background(), time.Second)
			defer scancel()
			_ = r.adm.Shutdown(sctx)
		}()
	}

	r.srv = proxy.New(proxy.Options{
		Log:            log,
		AccessLog:      accessLog,
		Registerer:     r.reg,
		TrustedProxies: cfg.Trusted,
		Limits:         proxyLimits(cfg.Limits),
		Watcher:        r.watch,
	})
	r.sum = o.sum
	// Watch before the first apply: a change saved while sluice starts must
	// not be missed (it is applied right after the first config).
	if o.file != "" {
		if err := r.watch.Add(o.file, func(string) { r.reload(false) }); err != nil {
			log.Warn("config file is not watched; reload with SIGHUP", "file", o.file, "err", err)
		}
	}
	r.mu.Lock()
	err = r.apply(cfg)
	r.mu.Unlock()
	if err != nil {
		log.Error("cannot start", "err", err)
		_ = r.srv.Shutdown(context.Background())
		r.closePolicies()
		return exitFail
	}
	r.logListeners()
	r.adm.SetReady(true)
	log.Info("sluice started", "version", Version, "endpoints", len(cfg.Endpoints))
	log.Debug("config", "config", cfg) // config.LogValue: no secrets

	for {
		select {
		case <-hup:
			log.Info("SIGHUP: reloading")
			r.reload(true)
		case sig := <-stop:
			return r.drain(sig, stop)
		}
	}
}

// drain stops accepting, lets in-flight requests finish within the
// shutdown timeout (a second signal cuts it short), and returns the exit
// code: 0, since draining is the normal way to stop.
func (r *runner) drain(sig os.Signal, stop <-chan os.Signal) int {
	r.adm.SetReady(false)
	r.mu.Lock()
	r.stopping = true
	timeout := proxyLimits(r.cfg.Limits).ShutdownTimeout
	r.mu.Unlock()
	if timeout <= 0 {
		timeout = proxy.DefaultLimits().ShutdownTimeout
	}
	r.log.Info("draining", "signal", sig.String(), "timeout", timeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case s := <-stop:
			r.log.Warn("second signal: closing remaining connections now", "signal", s.String())
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := r.srv.Shutdown(ctx); err != nil {
		r.log.Warn("drain cut short; remaining connections were closed", "err", err)
	}
	r.mu.Lock()
	r.closePolicies()
	r.mu.Unlock()
	r.log.Info("stopped")
	return exitOK
}

// reload re-reads the config file (if any) and applies it; with all set
// (SIGHUP) it also reloads every policy file. Failures keep the running
// config and log one error.
func (r *runner) reload(all bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return
	}
	if r.o.file != "" {
		if err := r.reloadConfig(all); err != nil {
			r.reloads.WithLabelValues("failure").Inc()
			r.lastOK.Set(0)
			// One line even when the file has several problems.
			r.log.Error("config reload failed; the running config stays", "file", r.o.file,
				"err", strings.ReplaceAll(err.Error(), "\n", "; "))
			return
		}
	}
	if all {
		for key, h := range r.policies {
			if err := h.Reload(); err != nil {
				r.log.Error("policy reload failed; keeping the running version",
					"file", strings.TrimPrefix(key, "file:"), "err", strings.ReplaceAll(err.Error(), "\n", "; "))
			}
		}
	}
}

func (r *runner) reloadConfig(force bool) error {
	data, err := os.ReadFile(r.o.file)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	if (sum == r.sum || sum == r.failed) && !force {
		// Touched, saved unchanged, or a second event for a broken version
		// already reported: one error per broken version, not per event.
		return nil
	}
	old := r.cfg
	cfg, err := config.Parse(r.o.file, data, os.LookupEnv)
	if err == nil {
		err = r.apply(cfg)
	}
	if err != nil {
		r.failed = sum
		return err
	}
	r.failed = [32]byte{}
	r.sum = sum
	r.reloads.WithLabelValues("success").Inc()
	r.lastOK.Set(1)
	added, removed := endpointDiff(old, cfg)
	r.log.Info("config reloaded", "file", r.o.file, "endpoints", len(cfg.Endpoints), "added", added, "removed", removed)
	r.log.Debug("config", "config", cfg)
	r.logListeners()
	return nil
}

// endpointDiff lists the endpoint URLs a reload added and removed, for the
// operator reading the log.
func endpointDiff(old, cur *config.Config) (added, removed []string) {
	urls := func(c *config.Config) map[string]bool {
		m := map[string]bool{}
		if c != nil {
			for _, e := range c.Endpoints {
				m[e.URL] = true
			}
		}
		return m
	}
	o, n := urls(old), urls(cur)
	for u := range n {
		if !o[u] {
			added = append(added, u)
		}
	}
	for u := range o {
		if !n[u] {
			removed = append(removed, u)
		}
	}
	sort.Strings(added)
	sort.Strings(removed)
	return added, removed
}

// apply builds the proxy endpoints of cfg, reusing the policy handles of
// unchanged policies, and swaps them in. On error nothing changed. Caller
// holds r.mu.
func (r *runner) apply(cfg *config.Config) error {
	next := map[string]*policy.Handle{}
	var created []*policy.Handle
	fail := func(err error) error {
		for _, h := range created {
			h.Close()
		}
		return err
	}
	eps := make([]proxy.EndpointConfig, 0, len(cfg.Endpoints))
	for i := range cfg.Endpoints {
		e := &cfg.Endpoints[i]
		hooks, err := r.policyFor(cfg, e, next, &created)
		if err != nil {
			return fail(policyError(cfg, i, err))
		}
		eps = append(eps, endpointConfig(cfg, e, hooks))
	}
	if err := r.srv.Apply(eps); err != nil {
		return fail(locateApplyError(cfg, err))
	}
	for key, h := range r.policies {
		if next[key] != h {
			h.Close()
		}
	}
	r.policies = next
	if r.cfg != nil {
		r.warnRestartNeeded(r.cfg, cfg)
	}
	r.cfg = cfg
	if lvl := firstNonEmpty(r.o.logLevel, cfg.Log.Level, "info"); lvl != "" {
		_ = setLevel(r.level, lvl)
	}
	return nil
}

// policyFor returns the endpoint's policy hooks (nil when it has none). A
// policy file already loaded by the running config is reused, so its
// watcher is not duplicated and its state (rate-limit counters) survives
// config reloads; inline policies are reused while their text is unchanged.
func (r *runner) policyFor(cfg *config.Config, e *config.Endpoint, next map[string]*policy.Handle, created *[]*policy.Handle) (exchange.Hooks, error) {
	key, err := policyKey(e)
	if err != nil || key == "" {
		return nil, err // nil Hooks, not a nil *Handle in an interface
	}
	if h, ok := next[key]; ok {
		return h, nil
	}
	if h, ok := r.policies[key]; ok {
		next[key] = h
		return h, nil
	}
	h, err := loadPolicy(cfg, e, policy.Options{Log: r.log, Registerer: r.reg, Watcher: r.watch})
	if err != nil {
		return nil, err
	}
	*created = append(*created, h)
	next[key] = h
	return h, nil
}

func (r *runner) closePolicies() {
	for _, h := range r.policies {
		h.Close()
	}
	r.policies = map[string]*policy.Handle{}
}

// warnRestartNeeded logs the settings a reload cannot change in place.
func (r *runner) warnRestartNeeded(old, cfg *config.Config) {
	var keys []string
	if old.Admin != cfg.Admin {
		keys = append(keys, "admin")
	}
	if fmt.Sprint(old.Trusted) != fmt.Sprint(cfg.Trusted) {
		keys = append(keys, "trusted_proxies")
	}
	if firstNonEmpty(r.o.logFormat, cfg.Log.Format, "text") != r.format {
		keys = append(keys, "log.format")
	}
	if cfg.Log.AccessLog != r.access {
		keys = append(keys, "log.access_log")
	}
	ol, nl := old.Limits, cfg.Limits
	if ol.ReadHeaderTimeout != nl.ReadHeaderTimeout || ol.IdleTimeout != nl.IdleTimeout || ol.MaxHeaderBytes != nl.MaxHeaderBytes || ol.BodyReadTimeout != nl.BodyReadTimeout {
		keys = append(keys, "limits (read_header_timeout, idle_timeout, body_read_timeout, max_header_bytes)")
	}
	if len(keys) > 0 {
		r.log.Warn("these settings changed but apply only after a restart", "keys", keys)
	}
}

// logListeners logs every bound listener; with port 0 this is how users
// (and the end-to-end tests) learn the port.
func (r *runner) logListeners() {
	addrs := r.srv.Addrs()
	keys := make([]string, 0, len(addrs))
	for k := range addrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r.log.Info("listening", "listen", k, "addr", addrs[k].String())
	}
}

func (r *runner) registerMetrics() {
	r.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_config_reloads_total",
		Help: "Config file reloads by result (success, failure).",
	}, []string{"result"})
	r.lastOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_config_last_reload_successful",
		Help: "1 when the last config reload succeeded (or none happened yet), 0 when it failed.",
	})
	r.lastOK.Set(1)
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "sluice_build_info",
		Help:        "Always 1; labels carry the build's version.",
		ConstLabels: prometheus.Labels{"version": Version, "goversion": runtime.Version()},
	})
	info.Set(1)
	r.reg.MustRegister(r.reloads, r.lastOK, info)
	r.reloads.WithLabelValues("success")
	r.reloads.WithLabelValues("failure")
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
