package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/sluicehq/sluice/internal/config"
)

// newLogger builds the process logger: text (logfmt-like) or JSON lines on
// w, at a level that can be changed on reload through lv.
func newLogger(w io.Writer, format string, lv *slog.LevelVar) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// openAccessLog returns the access logger for target ("" = none, "stdout",
// "stderr" or a file appended to) and a function closing what it opened.
// Access lines are always JSON: they are meant for machines.
func openAccessLog(target string, stdout, stderr io.Writer) (*slog.Logger, func() error, error) {
	var w io.Writer
	closeFn := func() error { return nil }
	switch target {
	case "":
		return nil, closeFn, nil
	case "stdout":
		w = stdout
	case "stderr":
		w = stderr
	default:
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("log.access_log: %w", err)
		}
		w, closeFn = f, f.Close
	}
	return slog.New(slog.NewJSONHandler(w, nil)), closeFn, nil
}

// setLevel applies a level name to lv (already validated by config).
func setLevel(lv *slog.LevelVar, name string) error {
	l, err := config.ParseLevel(name)
	if err != nil {
		return err
	}
	lv.Set(l)
	return nil
}
