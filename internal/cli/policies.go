package cli

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/policy"
	_ "github.com/sluicehq/sluice/policy/actions" // built-in actions register themselves
	"go.yaml.in/yaml/v3"
)

// policyKey identifies a policy source across config reloads: the file
// path, or the hash of an inline policy's text (not its line, so moving an
// unchanged inline policy in the file keeps its handle and state).
func policyKey(e *config.Endpoint) (string, error) {
	switch {
	case e.TrafficPolicyFile != "":
		return "file:" + e.TrafficPolicyFile, nil
	case e.TrafficPolicy != nil:
		src, err := yaml.Marshal(e.TrafficPolicy)
		if err != nil {
			return "", fmt.Errorf("traffic_policy: %w", err)
		}
		return fmt.Sprintf("inline:%x", sha256.Sum256(src)), nil
	}
	return "", nil
}

// policyError locates an error of endpoint i's policy for a start or a
// reload: see policyFileError; other errors carry the policy's own
// file:line:col.
func policyError(cfg *config.Config, i int, err error) error {
	if ferr, ok := policyFileError(cfg, i, err); ok {
		return ferr
	}
	return fmt.Errorf("%s: %w", cfg.Endpoints[i].Path, err)
}

// policyFileError locates a policy file that cannot be read at the
// endpoint that names it; ok is false for any other error.
func policyFileError(cfg *config.Config, i int, err error) (error, bool) {
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		return nil, false
	}
	return fmt.Errorf("%s.traffic_policy_file: %w", endpointPos(cfg, i), err), true
}

// loadPolicy builds a new handle for the endpoint's policy. File handles
// watch their file through opts.Watcher; inline ones are parsed from the
// config's own YAML nodes so errors point into the config file.
func loadPolicy(cfg *config.Config, e *config.Endpoint, opts policy.Options) (*policy.Handle, error) {
	if e.TrafficPolicyFile != "" {
		return policy.NewFileHandle(e.TrafficPolicyFile, opts)
	}
	p, err := policy.ParseNode(cfg.File, cfg.Source, e.TrafficPolicy, opts)
	if err != nil {
		return nil, err
	}
	return policy.NewPolicyHandle(p, opts), nil
}

func cmdPolicy(args []string, stdout, stderr io.Writer) int {
	const policyUsage = "Usage: sluice policy validate <file>...\n\nCheck Traffic Policy files: prints FILE:LINE:COL: message for each problem\nand exits 1, or \"FILE: ok\" for each valid file and exits 0.\n"
	if len(args) == 0 {
		fmt.Fprint(stderr, policyUsage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, policyUsage)
		return exitOK
	case "validate":
	default:
		fmt.Fprintf(stderr, "sluice policy: unknown subcommand %q\n\n%s", args[0], policyUsage)
		return exitUsage
	}
	files := args[1:]
	if len(files) == 0 {
		fmt.Fprintf(stderr, "sluice policy validate: no files given\n\n%s", policyUsage)
		return exitUsage
	}
	code := exitOK
	for _, f := range files {
		errs := policy.ValidateFiles(f)
		if len(errs) == 0 {
			fmt.Fprintf(stdout, "%s: ok\n", f)
			continue
		}
		code = exitFail
		for _, err := range errs {
			fmt.Fprintln(stdout, err)
		}
	}
	return code
}
