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

	"github.com/terminator-proxy/terminator/accesslog"
	"github.com/terminator-proxy/terminator/admin"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/dataplane"
	"github.com/terminator-proxy/terminator/metrics"
	"github.com/terminator-proxy/terminator/upgrade"
)

func newServeCmd() *cobra.Command {
	var path, pidfile string
	var drain, upTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the proxy",
		Long: `Run the proxy with the configuration file. SIGHUP reloads it (an invalid one is
refused and the old one keeps serving); SIGTERM or SIGINT stop accepting and
finish requests in flight within --drain-timeout.

SIGUSR2 upgrades the binary without closing a listening socket: the binary
now at the path this one was started from is started with the same
arguments, inherits every listening socket, the session-ticket keys and the
member health, and once it serves, this process stops accepting and drains.
If the new binary fails to start or is not ready within --upgrade-timeout,
it is stopped and this process serves on.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return status(cmdServe(path, pidfile, drain, upTimeout)) },
	}
	cmd.Flags().StringVar(&path, "config", "/etc/terminator/terminator.yaml", "config file (YAML or JSON)")
	cmd.Flags().DurationVar(&drain, "drain-timeout", 30*time.Second, "how long SIGTERM waits for requests in flight")
	cmd.Flags().DurationVar(&upTimeout, "upgrade-timeout", time.Minute, "how long SIGUSR2's new binary may take to serve")
	cmd.Flags().StringVar(&pidfile, "pidfile", "", "write the serving process's id here once it serves (terminator upgrade reads it)")
	return cmd
}

func cmdServe(path, pidfile string, drain, upTimeout time.Duration) int {
	// The path is read now: once a package upgrade replaced the binary,
	// /proc/self/exe names the deleted old one.
	exe, exeErr := os.Executable()
	inh, err := upgrade.Inherited()
	if err != nil {
		fmt.Fprintln(os.Stderr, "terminator:", err)
		return 1
	}
	cfg, warnings, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "terminator:", err)
		return 1
	}
	log := newLogger(cfg.Log.Format, cfg.Log.Level)
	for _, w := range warnings {
		log.Warn("configuration warning", "path", w.Path, "problem", w.Message)
	}
	if exeErr != nil {
		log.Warn("binary upgrades (SIGUSR2) are unavailable: the binary's path is unknown", "err", exeErr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err = serve(ctx, serveOptions{
		cfg: cfg, log: log, drain: drain,
		bind:    binder{inh},
		upgrade: upgrader{exe: exe, args: os.Args[1:], timeout: upTimeout, pidfile: pidfile},
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
	// bind binds sockets, inherited ones first; upgrade hands them over.
	bind    binder
	upgrade upgrader
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
	access, err := openAccessLog(o.cfg)
	if err != nil {
		return err
	}
	if access != nil {
		defer access.Close()
	}
	var plane *dataplane.Plane
	plane = dataplane.New(dataplane.Options{Certs: mgrs.registry, Logger: o.log, Metrics: mx, DrainTimeout: o.drain, AccessLog: access,
		Challenges:   mgrs.challenges(),
		Listen:       func(_, addr string) (net.Listener, error) { return o.bind.listen(sockData, addr) },
		ListenPacket: func(_, addr string) (net.PacketConn, error) { return o.bind.listenPacket(addr) },
		OnReload: func(err error) {
			recordReload(o.upgrade.pidfile, plane, err)
			if err != nil {
				sd.ready("reload refused, the previous configuration keeps serving: " + firstLine(err.Error()))
				return
			}
			sd.ready(servingStatus(plane))
		}})
	if err := o.bind.adopt(plane); err != nil {
		return err
	}
	handOff := map[string]net.Listener{} // the sockets a binary upgrade hands over besides the plane's

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
		ln, err := o.bind.listen(sockAdmin, o.cfg.Admin.Bind)
		if err != nil {
			return fmt.Errorf("admin.bind %s: %w", o.cfg.Admin.Bind, err)
		}
		handOff[sockAdmin+" "+o.cfg.Admin.Bind] = ln
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
	ctl, ctlLn, stopControl, err := startControl(ctx, cfg, version, mgrs, plane, mx, o.log, o.bind)
	if err != nil {
		return err
	}
	defer stopControl()
	if ctlLn != nil {
		handOff[sockControl+" "+controlBind(cfg)] = ctlLn
	}
	if err := o.bind.serving(o.log); err != nil {
		return err
	}
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

	reload := make(chan struct{}, 1)
	defer onSignal(bg, &wg, syscall.SIGHUP, func() bool {
		o.log.Info("SIGHUP: reloading configuration")
		sd.reloading()
		select {
		case reload <- struct{}{}:
		default:
		}
		return false
	})()
	if access != nil { // SIGUSR1 reopens the access-log file, after logrotate
		defer onSignal(bg, &wg, syscall.SIGUSR1, func() bool {
			if err := access.Reopen(); err != nil {
				o.log.Error("SIGUSR1: the access log could not be reopened; writing on to the old file", "err", err)
			} else {
				o.log.Info("SIGUSR1: access log reopened")
			}
			return false
		})()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		plane.Run(bg, load, reload, mgrs.registry.Watchers())
	}()
	handedOver := make(chan struct{})
	defer onSignal(bg, &wg, syscall.SIGUSR2, func() bool {
		o.log.Info("SIGUSR2: upgrading the binary", "binary", o.upgrade.exe)
		if _, err := o.upgrade.handOver(ctx, plane, handOff, sd, o.log, mx); err != nil {
			return false
		}
		close(handedOver)
		return true
	})()

	// The pidfile goes last: whoever reads it may signal at once, and
	// SIGHUP or SIGUSR2 before their handlers would end the process.
	if pf := o.upgrade.pidfile; pf != "" {
		if err := writePidfile(pf, os.Getpid()); err != nil {
			return err
		}
	}
	select {
	case <-ctx.Done():
		sd.stopping()
		if pf := o.upgrade.pidfile; pf != "" {
			defer removePidfile(pf, os.Getpid())
		}
	case <-handedOver: // the successor is the main process and owns the pidfile now
	}
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
	return fmt.Sprintf("serving %d listener(s), configuration generation %d", len(snap.Listeners)+len(snap.UDP), snap.Generation)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// openAccessLog opens log.access, if configured.
func openAccessLog(cfg *config.Config) (*accesslog.Logger, error) {
	a := cfg.Log.Access
	if a == nil {
		return nil, nil
	}
	l, err := accesslog.Open(accesslog.Options{Output: a.Output, Path: a.Path, SyslogAddress: a.SyslogAddress, Format: a.Format})
	if err != nil {
		return nil, fmt.Errorf("log.access: %w", err)
	}
	return l, nil
}

// onSignal runs f for each sig until ctx ends or f returns true, in a
// goroutine wg tracks. The returned function stops the delivery; until it
// is called a later sig is ignored rather than left to its default action
// (which would end the process).
func onSignal(ctx context.Context, wg *sync.WaitGroup, sig os.Signal, f func() (done bool)) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sig)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				if f() {
					return
				}
			}
		}
	}()
	return func() { signal.Stop(ch) }
}
