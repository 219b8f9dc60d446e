package cli

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/sluicehq/sluice/internal/config"
)

// parseInterspersed parses flags that may appear before and after positional
// arguments (`sluice http 9000 --listen :8080`). The standard flag package
// stops at the first positional argument; we resume after it. "--" ends
// flag parsing: everything after it is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// listFlag is a repeatable flag that also splits on commas:
// `--geoip-db a.mmdb --geoip-db b.mmdb` or `--trusted-proxies 10.0.0.0/8,::1`.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

// durationFlag accepts Go durations ("30s") into a config.Duration.
type durationFlag struct{ d *config.Duration }

func (f durationFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return ""
	}
	return f.d.D().String()
}

func (f durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Errorf("want a duration such as 30s or 1m30s")
	}
	*f.d = config.Duration(d)
	return nil
}

// sizeFlag accepts byte sizes ("10MiB") into a config.ByteSize.
type sizeFlag struct{ b *config.ByteSize }

func (f sizeFlag) String() string {
	if f.b == nil || *f.b == 0 {
		return ""
	}
	return fmt.Sprint(int64(*f.b))
}

func (f sizeFlag) Set(s string) error {
	n, err := config.ParseByteSize(s)
	if err != nil {
		return err
	}
	*f.b = config.ByteSize(n)
	return nil
}

// countFlag accepts a whole number, 0 or more, into a config.Count.
type countFlag struct{ c *config.Count }

func (f countFlag) String() string {
	if f.c == nil || *f.c == 0 {
		return ""
	}
	return fmt.Sprint(int(*f.c))
}

func (f countFlag) Set(s string) error {
	n, err := config.ParseCount(s)
	if err != nil {
		return err
	}
	*f.c = n
	return nil
}

// limitFlags registers the limit flags shared by http/tcp/tls on fs.
func limitFlags(fs *flag.FlagSet, l *config.Limits) {
	fs.Var(durationFlag{&l.ReadHeaderTimeout}, "read-header-timeout", "max `DURATION` to read a request's header and TLS handshake (default 10s)")
	fs.Var(durationFlag{&l.IdleTimeout}, "idle-timeout", "close client keep-alive connections idle this `DURATION` (default 2m)")
	fs.Var(durationFlag{&l.BodyReadTimeout}, "body-read-timeout", "max `DURATION` to wait for the next bytes of a request body; a stalled upload gets 408 (default 1m)")
	fs.Var(durationFlag{&l.DialTimeout}, "dial-timeout", "max `DURATION` to connect to the upstream (default 10s)")
	fs.Var(durationFlag{&l.ResponseHeaderTimeout}, "response-header-timeout", "max `DURATION` to wait for the upstream's response header (default 1m)")
	fs.Var(durationFlag{&l.UpstreamStallTimeout}, "upstream-stall-timeout", "max `DURATION` an upstream may send nothing more of an answer, or take nothing more of an upload (default 5m)")
	fs.Var(durationFlag{&l.ShutdownTimeout}, "shutdown-timeout", "max `DURATION` to drain in-flight requests on exit (default 30s)")
	fs.Var(sizeFlag{&l.MaxHeaderBytes}, "max-header-bytes", "largest request header accepted, a `SIZE` such as 64KiB (default 64KiB)")
	fs.Var(sizeFlag{&l.MaxBodyBytes}, "max-body-bytes", "largest request body accepted, a `SIZE` such as 10MB (default 100MiB)")
	fs.Var(durationFlag{&l.UpstreamIdleTimeout}, "upstream-idle-timeout", "close pooled upstream connections unused this `DURATION` (default 1m30s)")
	fs.Var(countFlag{&l.UpstreamIdleConns}, "upstream-idle-conns", "most idle connections kept per upstream target, a `NUMBER` (default 1024)")
}

// printFlags lists fs's flags the way users type them (--name; -c for
// one-letter flags), unlike flag.PrintDefaults' single dash.
func printFlags(fs *flag.FlagSet) {
	w := fs.Output()
	fs.VisitAll(func(f *flag.Flag) {
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		name, usage := flag.UnquoteUsage(f)
		line := "  " + dash + f.Name
		if name != "" {
			line += " " + name
		}
		def := f.DefValue
		if def != "" && def != "false" && def != "0" {
			usage += fmt.Sprintf(" (default %q)", def)
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
	})
}
