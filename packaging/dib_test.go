package packaging_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// element is the diskimage-builder element under test.
const element = "dib/amphora-terminator"

// TestDIBElement runs the amphora-terminator element's phases as
// diskimage-builder runs them: extra-data.d outside the image with
// TMP_HOOKS_PATH, then install.d and post-install.d inside it (chroot),
// each phase's executables in name order with environment.d sourced. The
// image is a throwaway overlay over a Debian 12 root in which Debian's
// octavia-agent (the Python amphora agent) and haproxy are installed and
// enabled (scripts/amphora-root). Afterwards terminator runs from the
// image, terminator-agent.service is enabled, the standalone
// terminator.service is not, the Python agent and haproxy are masked,
// and Octavia's directories exist.
func TestDIBElement(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("the element test mounts an overlay and chroots: run it as root (CI does)")
	}
	lower := strings.TrimSpace(run(t, "../scripts/amphora-root", "path"))
	deb := buildDeb(t)
	img := overlay(t, lower)
	if got := chroot(t, img, "systemctl", "is-enabled", "octavia-agent.service"); got != "enabled" {
		t.Fatalf("the stock amphora root should run octavia-agent; it is %q", got)
	}

	env := []string{"DIB_INIT_SYSTEM=systemd", "DIB_TERMINATOR_DEB=" + deb}
	hooks := filepath.Join(img, "tmp", "in_target.d")
	if err := os.MkdirAll(hooks, 0o755); err != nil {
		t.Fatal(err)
	}
	runPhase(t, element+"/extra-data.d", append(env, "TMP_HOOKS_PATH="+hooks), "")
	for _, phase := range []string{"environment.d", "install.d", "post-install.d"} {
		run(t, "cp", "-r", filepath.Join(element, phase), hooks)
	}
	runPhase(t, filepath.Join(hooks, "install.d"), env, img)
	runPhase(t, filepath.Join(hooks, "post-install.d"), env, img)

	if v := chroot(t, img, "terminator", "version"); !strings.Contains(v, "terminator "+version+" ") {
		t.Fatalf("terminator version inside the image: %q", v)
	}
	for unit, want := range map[string]string{
		"terminator-agent.service": "enabled",
		"terminator.service":       "disabled",
		"octavia-agent.service":    "masked",
		"haproxy.service":          "masked",
	} {
		if got := chroot(t, img, "systemctl", "is-enabled", unit); got != want {
			t.Errorf("%s is %q in the image, want %s", unit, got, want)
		}
	}
	if got := chroot(t, img, "stat", "-c", "%a", "/etc/octavia/certs", "/var/lib/octavia"); got != "700\n755" {
		t.Errorf("Octavia's directories: modes %q", got)
	}

	// Misconfigured builds stop with what is wrong.
	cmd := exec.Command(filepath.Join(element, "extra-data.d", "10-terminator-deb"))
	cmd.Env = append(os.Environ(), "TMP_HOOKS_PATH="+hooks, "DIB_TERMINATOR_DEB=")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "set DIB_TERMINATOR_DEB") {
		t.Errorf("without DIB_TERMINATOR_DEB: %v %s", err, out)
	}
	out, err := exec.Command("chroot", img, "env", "DIB_INIT_SYSTEM=sysv", "/tmp/in_target.d/post-install.d/90-terminator-amphora").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "systemd unit only") {
		t.Errorf("with DIB_INIT_SYSTEM=sysv: %v %s", err, out)
	}
}

// overlay mounts a writable throwaway view of lower, with /dev and /proc,
// and unmounts it when the test ends.
func overlay(t *testing.T, lower string) string {
	dir := t.TempDir()
	merged := filepath.Join(dir, "merged")
	for _, d := range []string{"upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "mount", "-t", "overlay", "overlay", "-o",
		"lowerdir="+lower+",upperdir="+filepath.Join(dir, "upper")+",workdir="+filepath.Join(dir, "work"), merged)
	t.Cleanup(func() { _ = exec.Command("umount", "-R", merged).Run() })
	run(t, "mount", "--bind", "/dev", filepath.Join(merged, "dev"))
	run(t, "mount", "-t", "proc", "proc", filepath.Join(merged, "proc"))
	return merged
}

// runPhase runs a phase's executables in name order, as dib-run-parts
// does, with environment.d sourced first; inside root when root is set.
func runPhase(t *testing.T, dir string, env []string, root string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		t.Fatalf("%s has no scripts", dir)
	}
	envDir, _ := filepath.Abs(filepath.Join(element, "environment.d"))
	for _, n := range names {
		script, _ := filepath.Abs(filepath.Join(dir, n))
		var cmd *exec.Cmd
		if root == "" {
			cmd = exec.Command("bash", "-c", `for f in "$1"/*; do . "$f"; done; exec "$2"`, "dib", envDir, script)
			cmd.Env = append(os.Environ(), env...)
		} else {
			inside := "/" + strings.TrimPrefix(strings.TrimPrefix(script, root), "/")
			cmd = exec.Command("chroot", append([]string{root, "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"},
				append(env, "bash", "-c", `for f in /tmp/in_target.d/environment.d/*; do . "$f"; done; exec "$1"`, "dib", inside)...)...)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", filepath.Join(filepath.Base(dir), n), err, out)
		}
	}
}

// chroot runs a command inside root and returns its trimmed output,
// whatever its exit status (systemctl is-enabled exits 1 for "disabled").
func chroot(t *testing.T, root string, args ...string) string {
	t.Helper()
	out, err := exec.Command("chroot", append([]string{root}, args...)...).CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("chroot %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}
