package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/terminator-proxy/terminator/backends/file"
	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/config"
)

// managers holds the certificate managers of one process and the
// goroutines that keep them current.
type managers struct {
	registry *certs.Registry
	file     *file.Manager
}

// newManagers creates every certificate manager terminator has and
// registers it by reference scheme.
func newManagers(cfg *config.Config, log *slog.Logger) (*managers, error) {
	rescan := 10 * time.Second
	if cfg != nil && cfg.TLS.RescanInterval > 0 {
		rescan = time.Duration(cfg.TLS.RescanInterval) * time.Millisecond
	}
	fm, err := file.New(file.Options{Rescan: rescan, Logger: log})
	if err != nil {
		return nil, err
	}
	reg := certs.NewRegistry()
	reg.Register("file", fm)
	return &managers{registry: reg, file: fm}, nil
}

// run runs the managers' watchers until ctx is done.
func (m *managers) run(ctx context.Context) { m.file.Run(ctx) }

func newLogger(format, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level)) // validated by config; defaults to info
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func printProblems(prefix string, ps config.Problems) {
	for _, p := range ps {
		fmt.Fprintf(os.Stderr, "%s%s\n", prefix, p)
	}
}
