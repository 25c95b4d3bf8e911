package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/terminator-proxy/terminator/admin"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/dataplane"
	"github.com/terminator-proxy/terminator/metrics"
)

func newServeCmd() *cobra.Command {
	var path string
	var drain time.Duration
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the proxy",
		Long: `Run the proxy with the configuration file. SIGHUP reloads it (an invalid one is
refused and the old one keeps serving); SIGTERM or SIGINT stop accepting and
finish requests in flight within --drain-timeout.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return status(cmdServe(path, drain)) },
	}
	cmd.Flags().StringVar(&path, "config", "/etc/terminator/terminator.yaml", "config file (YAML or JSON)")
	cmd.Flags().DurationVar(&drain, "drain-timeout", 30*time.Second, "how long SIGTERM waits for requests in flight")
	return cmd
}

func cmdServe(path string, drain time.Duration) int {
	cfg, warnings, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "terminator:", err)
		return 1
	}
	log := newLogger(cfg.Log.Format, cfg.Log.Level)
	for _, w := range warnings {
		log.Warn("configuration warning", "path", w.Path, "problem", w.Message)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err = serve(ctx, serveOptions{
		cfg: cfg, log: log, drain: drain,
		load: func() (*config.Config, error) {
			c, ws, err := config.Load(path)
			for _, w := range ws {
				log.Warn("configuration warning", "path", w.Path, "problem", w.Message)
			}
			return c, err
		},
	})
	if err != nil {
		log.Error("terminator stopped", "err", err)
		return 1
	}
	return 0
}

type serveOptions struct {
	cfg   *config.Config
	load  func() (*config.Config, error)
	log   *slog.Logger
	drain time.Duration
	// onReady, if set, is called with the plane once it serves.
	onReady func(*dataplane.Plane)
}

// serve runs terminator until ctx is done (SIGTERM), then drains for at
// most o.drain.
func serve(ctx context.Context, o serveOptions) error {
	mx := metrics.New()
	mgrs, err := newManagers(ctx, o.cfg, o.log, mx)
	if err != nil {
		return err
	}
	sd := notifier{o.log}
	var plane *dataplane.Plane
	plane = dataplane.New(dataplane.Options{Certs: mgrs.registry, Logger: o.log, Metrics: mx, DrainTimeout: o.drain,
		OnReload: func(err error) {
			if err != nil {
				sd.ready("reload refused, the previous configuration keeps serving: " + firstLine(err.Error()))
				return
			}
			sd.ready(servingStatus(plane))
		}})

	var draining atomic.Bool
	ready := func() error {
		switch {
		case draining.Load():
			return errors.New("draining")
		case plane.Current() == nil:
			return errors.New("no configuration applied yet")
		}
		return nil
	}

	bg, cancelBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancelBG(); wg.Wait() }()
	wg.Add(1)
	go func() { defer wg.Done(); mgrs.run(bg) }()

	var adminSrv *http.Server
	if o.cfg.Admin.Bind != "" {
		ln, err := net.Listen("tcp", o.cfg.Admin.Bind)
		if err != nil {
			return fmt.Errorf("admin.bind %s: %w", o.cfg.Admin.Bind, err)
		}
		adminSrv = &http.Server{Handler: admin.Handler(mx.Registry, ready, o.cfg.Admin.Pprof), ReadHeaderTimeout: 10 * time.Second}
		wg.Add(1)
		go func() { defer wg.Done(); _ = adminSrv.Serve(ln) }()
		defer adminSrv.Close()
		o.log.Info("admin endpoint listening", "addr", ln.Addr().String())
	}

	cfg, version, err := restoreState(o.cfg)
	if err != nil {
		return err
	}
	if err := plane.Apply(ctx, cfg); err != nil {
		printProblemsTo(o.log, err)
		return fmt.Errorf("initial configuration could not be served")
	}
	ctl, stopControl, err := startControl(ctx, cfg, version, mgrs, plane, mx, o.log)
	if err != nil {
		return err
	}
	defer stopControl()
	load := o.load
	if ctl != nil {
		load = func() (*config.Config, error) {
			file, err := o.load()
			if err != nil {
				return nil, err
			}
			return ctl.Base(file), nil
		}
	}
	if o.onReady != nil {
		o.onReady(plane)
	}
	sd.ready(servingStatus(plane)) // every listener is bound, the first snapshot applied
	wg.Add(1)
	go func() { defer wg.Done(); sd.watchdog(bg, ready) }()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-bg.Done():
				return
			case <-hup:
				o.log.Info("SIGHUP: reloading configuration")
				sd.reloading()
				select {
				case reload <- struct{}{}:
				default:
				}
			}
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		plane.Run(bg, load, reload, mgrs.registry.Watchers())
	}()

	<-ctx.Done()
	sd.stopping()
	draining.Store(true)
	o.log.Info("shutting down: draining requests in flight", "timeout", o.drain)
	sctx, cancel := context.WithTimeout(context.Background(), o.drain)
	defer cancel()
	if err := plane.Shutdown(sctx); err != nil {
		o.log.Warn("drain cut short", "err", err)
	}
	o.log.Info("stopped")
	return nil
}

// printProblemsTo logs each problem of a build error on its own line.
func printProblemsTo(log *slog.Logger, err error) {
	var ps config.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			log.Error("configuration problem", "path", p.Path, "problem", p.Message)
		}
		return
	}
	log.Error("configuration problem", "err", err)
}

// servingStatus is the STATUS= line systemd shows for the plane.
func servingStatus(p *dataplane.Plane) string {
	snap := p.Current()
	if snap == nil {
		return "no configuration applied"
	}
	return fmt.Sprintf("serving %d listener(s), configuration generation %d", len(snap.Listeners), snap.Generation)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
