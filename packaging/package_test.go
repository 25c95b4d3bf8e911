// Package packaging_test builds the Debian package and installs,
// upgrades, removes and purges it on this machine (as root, as CI runs),
// checking what each step leaves behind.
package packaging_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestDebianPackage: make deb builds a package that installs the stamped
// binary, the units (systemd-analyze verify finds nothing to say), a
// starting configuration that passes check, the terminator user and its
// state directory; reinstalling keeps an edited configuration; remove
// keeps only the configuration; purge leaves nothing.
func TestDebianPackage(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("the package test installs the package: run it as root (CI does)")
	}
	deb := buildDeb(t)
	// Debian's own checks: no errors and no warnings.
	if out, err := exec.Command("lintian", "--fail-on", "error,warning", deb).CombinedOutput(); err != nil {
		t.Fatalf("lintian (make deps installs it): %v\n%s", err, out)
	}
	_ = exec.Command("dpkg", "-P", "terminator").Run() // a leftover of an interrupted run
	t.Cleanup(func() { _ = exec.Command("dpkg", "-P", "terminator").Run() })

	run(t, "dpkg", "-i", deb)
	files := run(t, "dpkg", "-L", "terminator")
	for _, f := range []string{"/usr/bin/terminator", "/etc/terminator/terminator.yaml", "/lib/systemd/system/terminator.service",
		"/lib/systemd/system/terminator-agent.service", "/usr/share/doc/terminator/README.md", "/usr/share/doc/terminator/copyright",
		"/usr/share/doc/terminator/changelog.gz", "/usr/share/man/man1/terminator.1.gz", "/usr/share/man/man1/terminator-agent.1.gz"} {
		if !strings.Contains(files, f+"\n") {
			t.Errorf("the package lacks %s", f)
		}
	}
	if v := run(t, "/usr/bin/terminator", "version"); !strings.Contains(v, "terminator "+version+" (commit ") {
		t.Fatalf("terminator version: %q", v)
	}
	if out := run(t, "/usr/bin/terminator", "check", "--config", "/etc/terminator/terminator.yaml"); !strings.Contains(out, "OK") {
		t.Fatalf("the starting configuration: %s", out)
	}
	if out := run(t, "systemd-analyze", "verify", "/lib/systemd/system/terminator.service", "/lib/systemd/system/terminator-agent.service"); strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify:\n%s", out)
	}
	run(t, "getent", "passwd", "terminator")
	if fi, err := os.Stat("/var/lib/terminator"); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("/var/lib/terminator: %v %v", fi, err)
	}
	if owner := strings.TrimSpace(run(t, "stat", "-c", "%U:%G", "/var/lib/terminator")); owner != "terminator:terminator" {
		t.Fatalf("/var/lib/terminator belongs to %s", owner)
	}

	// An edited configuration survives a reinstall (a conffile).
	edited := "# edited by the operator\n" + string(must(os.ReadFile("/etc/terminator/terminator.yaml")))
	if err := os.WriteFile("/etc/terminator/terminator.yaml", []byte(edited), 0o640); err != nil {
		t.Fatal(err)
	}
	// The reinstall is an upgrade: its postinst hands the running proxy
	// over to the binary just installed, without a restart.
	old, stop := serveInstalled(t)
	defer stop()
	if out := run(t, "dpkg", "--force-confold", "-i", deb); !strings.Contains(out, "serves the new binary") {
		t.Fatalf("the upgrade did not hand over to the new binary:\n%s", out)
	}
	if got := string(must(os.ReadFile("/etc/terminator/terminator.yaml"))); got != edited {
		t.Fatal("reinstalling replaced the operator's configuration")
	}
	if pid := readPid(t); pid == old.Pid {
		t.Fatal("the pidfile still names the old process")
	}
	if err := waitExit(old, 15*time.Second); err != nil {
		t.Fatalf("the old process: %v", err)
	}
	if body := get(t, "http://127.0.0.1:8080/"); body != "member" {
		t.Fatalf("the new binary answered %q", body)
	}
	stop()

	run(t, "dpkg", "-r", "terminator")
	if exists("/usr/bin/terminator") || exists("/lib/systemd/system/terminator.service") || !exists("/etc/terminator/terminator.yaml") {
		t.Fatal("remove: the binary and units go, the configuration stays")
	}
	run(t, "dpkg", "-P", "terminator")
	for _, p := range []string{"/etc/terminator/terminator.yaml", "/var/lib/terminator"} {
		if exists(p) {
			t.Errorf("purge left %s", p)
		}
	}
	if exec.Command("getent", "passwd", "terminator").Run() == nil {
		t.Error("purge left the terminator user")
	}
}

// serveInstalled runs the installed binary with the installed starting
// configuration (127.0.0.1:8080 to a member on 127.0.0.1:8081, started
// here) and its pidfile, as the unit does. stop ends whichever process
// serves then; this test is subreaper of the upgrade's new process.
func serveInstalled(t *testing.T) (*os.Process, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:8081")
	if err != nil {
		t.Fatal(err)
	}
	member := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "member") })}
	go member.Serve(ln)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	os.Remove(pidfile)
	if err := os.MkdirAll(filepath.Dir(pidfile), 0o755); err != nil { // the unit's RuntimeDirectory
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(filepath.Dir(pidfile)) })
	cmd := exec.Command("/usr/bin/terminator", "serve", "--config", "/etc/terminator/terminator.yaml", "--pidfile", pidfile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(pidfile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("terminator serve wrote no pidfile")
		}
	}
	var once sync.Once
	return cmd.Process, func() {
		once.Do(func() {
			if data, err := os.ReadFile(pidfile); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
					_ = syscall.Kill(pid, syscall.SIGTERM)
					var ws unix.WaitStatus
					_, _ = unix.Wait4(pid, &ws, 0, nil)
				}
			}
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
			member.Close()
			_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
		})
	}
}

// pidfile is the unit's pidfile.
const pidfile = "/run/terminator/terminator.pid"

func readPid(t *testing.T) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(string(must(os.ReadFile(pidfile)))))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// waitExit waits for a child process to exit.
func waitExit(p *os.Process, within time.Duration) error {
	done := make(chan error, 1)
	go func() { _, err := p.Wait(); done <- err }()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		return fmt.Errorf("pid %d still runs after %v", p.Pid, within)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// version is the version the tests stamp into the package.
const version = "0.0.1~test"

var (
	debOnce sync.Once
	debPath string
)

// buildDeb runs make deb once for the package's tests.
func buildDeb(t *testing.T) string {
	t.Helper()
	debOnce.Do(func() {
		run(t, "make", "-C", "..", "deb", "VERSION="+version)
		debPath, _ = filepath.Abs(filepath.Join("..", "bin", "terminator_"+version+"_"+goarch(t)+".deb"))
	})
	if debPath == "" {
		t.Fatal("make deb failed earlier")
	}
	return debPath
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func goarch(t *testing.T) string {
	return strings.TrimSpace(run(t, "go", "env", "GOARCH"))
}
