package vault_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/terminator-proxy/terminator/pki"
)

func TestSignerIsACertificateGenerator(t *testing.T) {
	m, _ := newManager(t, nil)
	s, err := m.Signer("pki/web")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.NewKey(pki.ECDSAP256)
	csr, _ := pki.NewCSR("amp-7.example", key)
	out, err := s.SignCSR(context.Background(), csr, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(out)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: vaultRoots(t), DNSName: "amp-7.example"}); err != nil {
		t.Fatalf("the signed certificate does not verify against Vault's CA: %v", err)
	}
	if left := time.Until(c.NotAfter); left > 11*time.Minute || left < 8*time.Minute {
		t.Fatalf("validity %v, want about 10m", left)
	}
	if _, err := m.Signer("nomount"); err == nil {
		t.Fatal("a role without mount was accepted")
	}
}

// TestCertInspectVaultRef runs the binary's cert inspect on a vault: ref,
// configured by the standard VAULT_* variables.
func TestCertInspectVaultRef(t *testing.T) {
	ca, data := pemFixture(t)
	kvPut(t, "tls/inspect", data)
	cmd := exec.Command("go", "run", "../../cmd/terminator", "cert", "inspect", "vault:secret/data/tls/inspect")
	cmd.Env = append(os.Environ(), "VAULT_ADDR=http://"+devVault.addr, "VAULT_TOKEN=root")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cert inspect: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "inspect.example") || !strings.Contains(string(out), ca) {
		t.Fatalf("inspect output:\n%s", out)
	}
}
