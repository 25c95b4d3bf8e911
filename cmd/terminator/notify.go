package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// notifier speaks systemd's notify protocol for Type=notify units
// (go-systemd's daemon package); without NOTIFY_SOCKET it does nothing.
type notifier struct{ log *slog.Logger }

func (n notifier) send(lines ...string) {
	if _, err := daemon.SdNotify(false, strings.Join(lines, "\n")); err != nil {
		n.log.Warn("systemd notification failed", "err", err)
	}
}

// ready says that every listener is bound and serving.
func (n notifier) ready(status string) { n.send(daemon.SdNotifyReady, "STATUS="+status) }

// reloading starts a reload (MONOTONIC_USEC, as systemd 253's
// Type=notify-reload wants, is accepted by older ones).
func (n notifier) reloading() {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	n.send(daemon.SdNotifyReloading, fmt.Sprintf("MONOTONIC_USEC=%d", ts.Nano()/1000), "STATUS=reloading the configuration")
}

func (n notifier) stopping() { n.send(daemon.SdNotifyStopping, "STATUS=draining requests in flight") }

// watchdog pings systemd at half of WatchdogSec until ctx ends; it stops
// pinging, so that systemd restarts terminator, if alive reports a fault.
func (n notifier) watchdog(ctx context.Context, alive func() error) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := alive(); err != nil {
				n.log.Error("watchdog: not alive; systemd will restart terminator", "err", err)
				continue
			}
			n.send(daemon.SdNotifyWatchdog)
		}
	}
}
