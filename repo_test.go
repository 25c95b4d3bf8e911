package terminator_test

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestMakeTestPreparesServersFirst: make test builds Vault and installs
// Barbican in a visible step before go test runs, so no test's timeout
// includes a multi-minute build (a fresh machine once hit the 20-minute
// limit inside the Vault package's set-up).
func TestMakeTestPreparesServersFirst(t *testing.T) {
	out, err := exec.Command("make", "-n", "test").Output()
	if err != nil {
		t.Fatalf("make -n test: %v", err)
	}
	steps := string(out)
	goTest := strings.Index(steps, "go test")
	for _, step := range []string{"scripts/vault-dev build", "scripts/pebble-dev build", "scripts/barbican-dev install", "scripts/octavia-peer install"} {
		if i := strings.Index(steps, step); i < 0 || goTest < 0 || i > goTest {
			t.Errorf("make test does not run %q before go test:\n%s", step, steps)
		}
	}
	for _, f := range []string{"backends/vault/main_test.go", "backends/barbican/main_test.go"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(src), `"build"`) || strings.Contains(string(src), `"install"`) {
			t.Errorf("%s builds or installs its server inside the test run", f)
		}
	}
}

// TestExternalServerTestsFailLoudly: when the real Vault or Barbican
// cannot start, their packages fail; they never pass by skipping (the
// Barbican set-up used to exit 0 outside CI).
func TestExternalServerTestsFailLoudly(t *testing.T) {
	for pkg, env := range map[string]string{
		"./backends/barbican": "TERMINATOR_BARBICAN_DEV=/bin/false",
		"./backends/vault":    "TERMINATOR_CACHE=" + t.TempDir(), // no Vault built there
	} {
		cmd := exec.Command("go", "test", "-count=1", pkg)
		cmd.Env = append(os.Environ(), env, "CI=")
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%s passed without its server:\n%s", pkg, out)
			continue
		}
		if !strings.Contains(string(out), "FAIL") || !strings.Contains(string(out), "could not start") {
			t.Errorf("%s failed without saying why:\n%s", pkg, out)
		}
	}
}

// TestRepoRootHoldsOnlyTheDesign: the root holds the module, the docs and
// the packages, never files left by manual runs (cfg.yaml, l.json, p.json
// and serve.log once were).
func TestRepoRootHoldsOnlyTheDesign(t *testing.T) {
	out, err := exec.Command("git", "ls-files").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	allowed := []string{
		".ci", ".gitignore", "Makefile", "README.md", "go.mod", "go.sum", "doc.go", "deps_test.go", "repo_test.go",
		"accesslog", "admin", "amphora", "backends", "bench", "certs", "cmd", "config", "dataplane", "health", "internal", "metrics",
		"mtlsctl", "packaging", "peersync", "pki", "proxy", "scripts", "sni", "udprelay", "upgrade",
	}
	seen := map[string]bool{}
	for _, f := range strings.Fields(string(out)) {
		top, _, _ := strings.Cut(f, "/")
		if !seen[top] && !slices.Contains(allowed, top) {
			t.Errorf("unexpected file or folder at the repo root: %s", top)
		}
		seen[top] = true
	}
}
