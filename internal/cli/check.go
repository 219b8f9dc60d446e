package cli

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/policy"
	"github.com/sluicehq/sluice/proxy"
	"github.com/sluicehq/sluice/proxy/certs"
	"github.com/sluicehq/sluice/proxy/upstream"
)

// checkConfig is `sluice serve --check` (nginx -t): everything a start
// would load — the file, every policy, every certificate, every upstream
// address, the endpoints together — without binding a port. It prints each problem, or "FILE: ok",
// and returns the exit code.
func checkConfig(cfg *config.Config, stdout io.Writer) int {
	quiet := slog.New(slog.DiscardHandler)
	var problems []string
	if _, closeAccess, err := openAccessLog(cfg.Log.AccessLog, io.Discard, io.Discard); err != nil {
		problems = append(problems, inFile(cfg, err).Error())
	} else {
		closeAccess() // like nginx -t, this creates the file if it can
	}
	for i := range cfg.Endpoints {
		e := &cfg.Endpoints[i]
		for _, u := range e.Upstream {
			if _, err := upstream.ParseTarget(u); err != nil {
				problems = append(problems, fmt.Sprintf("%s.upstream: %v", endpointPos(cfg, i), err))
			}
		}
		if len(e.TLS) > 0 {
			pairs := make([]certs.Pair, 0, len(e.TLS))
			for _, t := range e.TLS {
				pairs = append(pairs, certs.Pair{Cert: t.Cert, Key: t.Key})
			}
			st := certs.NewStore(quiet)
			if err := st.Load(pairs); err != nil {
				problems = append(problems, fmt.Sprintf("%s.tls: %v", endpointPos(cfg, i), err))
			}
			st.Close()
		}
		var errs []error
		switch {
		case e.TrafficPolicyFile != "":
			errs = policy.ValidateFiles(e.TrafficPolicyFile)
		case e.TrafficPolicy != nil:
			p, err := policy.ParseNode(cfg.File, cfg.Source, e.TrafficPolicy, policy.Options{Log: quiet})
			if err != nil {
				errs = policy.Errors(err)
			} else {
				p.Close()
			}
		}
		for _, err := range errs {
			if ferr, ok := policyFileError(cfg, i, err); ok {
				err = ferr
			}
			problems = append(problems, err.Error()) // else already FILE:LINE:COL
		}
	}
	if len(problems) == 0 {
		// The endpoints together, as a start builds them: clashing hosts
		// or ports, a tcp endpoint sharing its port, bad limits.
		eps := make([]proxy.EndpointConfig, 0, len(cfg.Endpoints))
		for i := range cfg.Endpoints {
			eps = append(eps, endpointConfig(cfg, &cfg.Endpoints[i], nil))
		}
		srv := proxy.New(proxy.Options{Log: quiet, TrustedProxies: cfg.Trusted, Limits: proxyLimits(cfg.Limits)})
		if err := srv.Check(eps); err != nil {
			problems = append(problems, locateApplyError(cfg, err).Error())
		}
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stdout, p)
		}
		return exitFail
	}
	fmt.Fprintf(stdout, "%s: ok\n", cfg.File)
	return exitOK
}

// inFile prefixes err with the config file's name, for problems with a
// top-level setting that has no position of its own.
func inFile(cfg *config.Config, err error) error {
	if cfg.File == "" {
		return err
	}
	return fmt.Errorf("%s: %w", cfg.File, err)
}
