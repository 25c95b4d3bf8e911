// Package packaging_test builds the Debian package and installs,
// upgrades, removes and purges it on this machine (as root, as CI runs),
// checking what each step leaves behind.
package packaging_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
	const version = "0.0.1~test"
	run(t, "make", "-C", "..", "deb", "VERSION="+version)
	deb, _ := filepath.Abs(filepath.Join("..", "bin", "terminator_"+version+"_"+goarch(t)+".deb"))
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
	run(t, "dpkg", "--force-confold", "-i", deb)
	if got := string(must(os.ReadFile("/etc/terminator/terminator.yaml"))); got != edited {
		t.Fatal("reinstalling replaced the operator's configuration")
	}

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

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func goarch(t *testing.T) string {
	return strings.TrimSpace(run(t, "go", "env", "GOARCH"))
}
