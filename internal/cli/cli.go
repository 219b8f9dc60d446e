package cli

import (
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/sluicehq/sluice/internal/config"
)

// Version is the build's version, set by cmd/sluice from -ldflags
// "-X main.version=v1.2.3". "dev" for plain `go build`.
var Version = "dev"

const usage = `sluice — a self-hosted, programmable edge

Usage:
  sluice serve [-c sluice.yaml]          run from a config file
  sluice http  <upstream> [flags]        front one HTTP service (like ngrok http 8080)
  sluice tcp   <upstream> [flags]        front one TCP service
  sluice tls   <upstream> [flags]        SNI-routed TLS passthrough to one service
  sluice policy validate <file>...       check Traffic Policy files
  sluice version                         print the version
  sluice help [command]                  show help

<upstream> is a port (8080 = 127.0.0.1:8080), host:port, or a URL
(http://, https://, h2c://, unix:/path; tcp/tls also tcp://host:port).

Run "sluice help <command>" or "sluice <command> -h" for its flags.
Docs: docs/cli.md and docs/config.md.
`

// exit codes: 0 ok, 1 runtime or validation failure, 2 usage error.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// Main runs the sluice command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(rest, stdout, stderr)
	case "http", "tcp", "tls":
		return cmdAgent(cmd, rest, stdout, stderr)
	case "policy":
		return cmdPolicy(rest, stdout, stderr)
	case "version", "--version", "-version", "-v":
		fmt.Fprintf(stdout, "sluice %s (%s %s/%s)\n", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" {
			return Main([]string{rest[0], "-h"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

// flagError turns a flag parsing error into an exit code; -h is not an
// error.
func flagError(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

func cmdServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sluice serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: sluice serve [-c sluice.yaml] [flags]\n\nRun every endpoint of a config file; the file is reloaded when it changes\nor on SIGHUP. See docs/config.md.\n\nFlags:\n")
		printFlags(fs)
	}
	var file, logFormat, logLevel string
	var check bool
	fs.StringVar(&file, "c", "sluice.yaml", "config `FILE`")
	fs.StringVar(&file, "config", "sluice.yaml", "config `FILE` (same as -c)")
	fs.StringVar(&logFormat, "log-format", "", "override log.format: text or json")
	fs.StringVar(&logLevel, "log-level", "", "override log.level: debug, info, warn or error")
	fs.BoolVar(&check, "check", false, "check the config, its policies and certificates, then exit (like nginx -t)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "sluice serve: unexpected argument %q (the config file goes after -c)\n", pos[0])
		fs.Usage()
		return exitUsage
	}
	if logFormat != "" && logFormat != "text" && logFormat != "json" {
		fmt.Fprintf(stderr, "sluice serve: --log-format %q: want text or json\n", logFormat)
		return exitUsage
	}
	if _, err := config.ParseLevel(logLevel); err != nil {
		fmt.Fprintf(stderr, "sluice serve: --log-level: %v\n", err)
		return exitUsage
	}
	data, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v\n", err)
		return exitFail
	}
	cfg, err := config.Parse(file, data, os.LookupEnv)
	if err != nil {
		// One FILE:LINE:COL: message per line, as compilers print them, so
		// editors can jump to each.
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	if check {
		return checkConfig(cfg, stdout)
	}
	o := runOptions{file: file, logFormat: logFormat, logLevel: logLevel, sum: sha256.Sum256(data)}
	return run(cfg, o, stdout, stderr)
}

func cmdAgent(kind string, args []string, stdout, stderr io.Writer) int {
	var f agentFlags
	fs := newAgentFlagSet(kind, &f, stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: sluice %s <upstream> [flags]\n\n%s\n\nFlags:\n", kind, agentHelp[kind])
		printFlags(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) != 1 {
		if len(pos) == 0 {
			fmt.Fprintf(stderr, "sluice %s: missing <upstream> (a port, host:port or URL)\n", kind)
		} else {
			fmt.Fprintf(stderr, "sluice %s: one <upstream> expected, got %d: %q\n", kind, len(pos), pos)
		}
		fs.Usage()
		return exitUsage
	}
	cfg, err := f.toConfig(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "sluice %s: %v\n", kind, err)
		if errors.Is(err, errTunnels) || errors.Is(err, errGeoIP) {
			return exitUsage
		}
		return exitFail
	}
	return run(cfg, runOptions{}, stdout, stderr)
}

var agentHelp = map[string]string{
	"http": "Front one HTTP service: `sluice http 9000` serves 127.0.0.1:9000 on\n127.0.0.1:8000. HTTP/1.1, HTTP/2, gRPC (h2c:// upstreams) and WebSocket.",
	"tcp":  "Front one TCP service: bytes are piped both ways.",
	"tls":  "Pass TLS connections through to one service without terminating them;\nwith --url tls://host the endpoint answers for that SNI name only.",
}

// signals delivers SIGTERM/SIGINT on stop (buffered for a second one that
// cuts the drain short) and SIGHUP on hup.
func signals() (stop <-chan os.Signal, hup <-chan os.Signal, cleanup func()) {
	s := make(chan os.Signal, 2)
	h := make(chan os.Signal, 1)
	signal.Notify(s, syscall.SIGTERM, syscall.SIGINT)
	signal.Notify(h, syscall.SIGHUP)
	return s, h, func() { signal.Stop(s); signal.Stop(h) }
}
