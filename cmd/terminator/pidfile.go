package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/terminator-proxy/terminator/dataplane"
	"github.com/terminator-proxy/terminator/internal/atomicfile"
)

// The pidfile names the process serving; a binary upgrade's successor
// rewrites it once it has taken over, and a failed upgrade leaves its cause
// in pidfile+upgradeSuffix, which is how "terminator upgrade" learns the
// result without systemd. Each SIGHUP reload leaves its result in
// pidfile+reloadSuffix for "terminator reload".
const (
	upgradeSuffix = ".upgrade"
	reloadSuffix  = ".reload"
)

// recordReload writes a reload's result beside the pidfile, if there is
// one: "ok <generation>", or "failed" and every problem.
func recordReload(pidfile string, plane *dataplane.Plane, err error) {
	if pidfile == "" {
		return
	}
	text := "ok " + servingStatus(plane) + "\n"
	if err != nil {
		text = "failed\n" + err.Error() + "\n"
	}
	if err := atomicfile.Write(pidfile+reloadSuffix, []byte(text), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "terminator: recording the reload's result:", err)
	}
}

func newReloadCmd() *cobra.Command {
	var pidfile string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Reload the running proxy's configuration (SIGHUP) and report the result",
		Long: `Send SIGHUP to the terminator named by --pidfile and wait for the result of the
reload: exit 0 and print what serves, or exit 1 and print every problem of the
refused configuration (the previous one keeps serving). systemctl reload sends
the same signal.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return status(cmdReload(pidfile, timeout)) },
	}
	cmd.Flags().StringVar(&pidfile, "pidfile", "/run/terminator/terminator.pid", "the pidfile of terminator serve")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for the result (certificates may be fetched)")
	return cmd
}

func cmdReload(pidfile string, timeout time.Duration) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "terminator reload: "+format+"\n", a...)
		return 1
	}
	pid, err := readPidfile(pidfile)
	if err != nil {
		return fail("%v", err)
	}
	result := pidfile + reloadSuffix
	if err := os.Remove(result); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail("%v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fail("signalling pid %d: %v", pid, err)
	}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		data, err := os.ReadFile(result)
		if err != nil {
			if !alive(pid) {
				return fail("pid %d exited", pid)
			}
			continue
		}
		if text, ok := strings.CutPrefix(string(data), "ok "); ok {
			fmt.Printf("terminator: reloaded, %s", text)
			return 0
		}
		return fail("refused; the previous configuration keeps serving:\n%s", strings.TrimPrefix(string(data), "failed\n"))
	}
	return fail("no result within %v", timeout)
}

// writePidfile atomically writes pid to path.
func writePidfile(path string, pid int) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".pid-")
	if err != nil {
		return fmt.Errorf("pidfile: %w", err)
	}
	_, err = fmt.Fprintf(tmp, "%d\n", pid)
	if e := tmp.Close(); err == nil {
		err = e
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("pidfile %s: %w", path, err)
	}
	return nil
}

// readPidfile returns the pid in path.
func readPidfile(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("pidfile: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("pidfile %s: %q is not a process id", path, strings.TrimSpace(string(data)))
	}
	return pid, nil
}

// removePidfile removes path if it still names pid.
func removePidfile(path string, pid int) {
	if got, err := readPidfile(path); err == nil && got == pid {
		os.Remove(path)
	}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func newUpgradeCmd() *cobra.Command {
	var pidfile string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "upgrade",
		Short: "Replace the running proxy's binary without downtime (SIGUSR2) and report the result",
		Long: `Send SIGUSR2 to the terminator named by --pidfile and wait for the result: the
binary now installed starts, takes over the listening sockets and rewrites the
pidfile; the old process drains and exits. If the new binary fails, the old
one keeps serving and this command prints why and exits 1. The package's
postinst runs it on upgrade.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return status(cmdUpgrade(pidfile, timeout)) },
	}
	cmd.Flags().StringVar(&pidfile, "pidfile", "/run/terminator/terminator.pid", "the pidfile of terminator serve")
	cmd.Flags().DurationVar(&timeout, "timeout", 90*time.Second, "how long to wait for the new binary (longer than serve's --upgrade-timeout)")
	return cmd
}

func cmdUpgrade(pidfile string, timeout time.Duration) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "terminator upgrade: "+format+"\n", a...)
		return 1
	}
	old, err := readPidfile(pidfile)
	if err != nil {
		return fail("%v", err)
	}
	if !alive(old) {
		return fail("pid %d (from %s) is not running", old, pidfile)
	}
	result := pidfile + upgradeSuffix
	if err := os.Remove(result); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail("%v", err)
	}
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		return fail("signalling pid %d: %v", old, err)
	}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if why, err := os.ReadFile(result); err == nil {
			return fail("the new binary did not take over; pid %d keeps serving: %s", old, strings.TrimSpace(string(why)))
		}
		if pid, err := readPidfile(pidfile); err == nil && pid != old && alive(pid) {
			fmt.Printf("terminator: pid %d serves the new binary; pid %d drains and exits\n", pid, old)
			return 0
		}
		if !alive(old) {
			return fail("pid %d exited and no new process took over", old)
		}
	}
	return fail("no result within %v; pid %d still serves", timeout, old)
}
