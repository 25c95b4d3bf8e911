package vault_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// devVault is the real Vault dev server the tests run against.
var devVault struct {
	addr string
	cmd  *exec.Cmd
	root *api.Client
	http *http.Client
}

// TestMain starts a real Vault, or fails the package loudly: these tests
// never pass without running. Vault is built before go test runs (make
// test's deps step), never inside a test's timeout.
func TestMain(m *testing.M) {
	code, err := runWithVault(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: vault tests could not start a real Vault:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func runWithVault(m *testing.M) (int, error) {
	var stderr strings.Builder
	find := exec.Command("../../scripts/vault-dev", "path")
	find.Stderr = &stderr
	out, err := find.Output()
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	bin := strings.TrimSpace(string(out))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	devVault.addr = ln.Addr().String()
	ln.Close()
	dir, _ := os.MkdirTemp("", "vault-dev")
	defer os.RemoveAll(dir)
	logf, _ := os.Create(filepath.Join(dir, "vault.log"))
	cmd := exec.Command(bin, "server", "-dev", "-dev-root-token-id=root", "-dev-listen-address="+devVault.addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	devVault.cmd = cmd
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _, _ = cmd.Process.Wait() }()
	cfg := api.DefaultConfig()
	cfg.Address = "http://" + devVault.addr
	devVault.http = cfg.HttpClient
	devVault.root, err = api.NewClient(cfg)
	if err != nil {
		return 0, err
	}
	devVault.root.SetToken("root")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if h, err := devVault.root.Sys().Health(); err == nil && h.Initialized && !h.Sealed {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "vault.log"))
			return 0, fmt.Errorf("Vault did not start:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := setupVault(); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// setupVault mounts what the tests use: KV v2 (the dev default at secret/),
// a KV v1 mount, a PKI mount with a role, AppRole and a policy.
func setupVault() error {
	c := devVault.root
	ctx := context.Background()
	steps := []struct {
		path string
		data map[string]any
	}{
		{"sys/mounts/kv1", map[string]any{"type": "kv", "options": map[string]any{"version": "1"}}},
		{"sys/mounts/pki", map[string]any{"type": "pki", "config": map[string]any{"max_lease_ttl": "87600h"}}},
		{"pki/root/generate/internal", map[string]any{"common_name": "Vault Test Root", "ttl": "87600h", "key_type": "ec"}},
		{"pki/roles/web", map[string]any{"allow_any_name": true, "key_type": "any", "max_ttl": "1h", "not_before_duration": "1s", "server_flag": true}},
		{"sys/auth/approle", map[string]any{"type": "approle"}},
		{"sys/policies/acl/terminator", map[string]any{"policy": `
path "secret/data/tls/*" { capabilities = ["read"] }
path "secret/metadata/tls/*" { capabilities = ["read"] }
path "kv1/*" { capabilities = ["read"] }
path "pki/sign/web" { capabilities = ["update"] }
path "pki/ca_chain" { capabilities = ["read"] }
path "pki/crl/pem" { capabilities = ["read"] }
`}},
		{"auth/approle/role/terminator", map[string]any{"token_policies": "terminator", "token_ttl": "20m", "token_max_ttl": "1h"}},
	}
	for _, s := range steps {
		if _, err := c.Logical().WriteWithContext(ctx, s.path, s.data); err != nil {
			return fmt.Errorf("setting up %s: %w", s.path, err)
		}
	}
	return nil
}

// approleCreds returns a role ID and a fresh secret ID.
func approleCreds(t *testing.T) (string, string) {
	t.Helper()
	r, err := devVault.root.Logical().Read("auth/approle/role/terminator/role-id")
	if err != nil {
		t.Fatal(err)
	}
	s, err := devVault.root.Logical().Write("auth/approle/role/terminator/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	return r.Data["role_id"].(string), s.Data["secret_id"].(string)
}
