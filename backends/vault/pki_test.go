package vault_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/terminator-proxy/terminator/backends/vault"
	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

func tlsLeaf(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: name})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

func vaultRoots(t *testing.T) *x509.CertPool {
	t.Helper()
	sec, err := devVault.root.Logical().Read("pki/cert/ca")
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	p.AppendCertsFromPEM([]byte(sec.Data["certificate"].(string)))
	return p
}

// TestPKIRenewalUnderLoad: a 6-second certificate from Vault PKI is
// renewed several times while a client loop runs.
func TestPKIRenewalUnderLoad(t *testing.T) {
	m, st := newManager(t, nil)
	ref := "vault-pki:pki/issue/web?common_name=pki.example&ttl=6s"
	addr, _ := serve(t, m, ref)
	roots := vaultRoots(t)
	first := served(t, addr, "pki.example", roots)
	l := tu.StartLoad(roots, "https://"+addr+"/", "pki.example", 3, 3)
	seen := map[string]bool{first.SerialNumber.String(): true}
	waitFor(t, 30*time.Second, "three renewals", func() bool {
		if c, err := tlsLeaf(addr, "pki.example", roots); err == nil {
			seen[c.SerialNumber.String()] = true
		}
		return len(seen) >= 4
	})
	l.Finish(t)
	st.mu.Lock()
	na := st.notAfter[ref]
	st.mu.Unlock()
	if len(na) < 2 || !na[len(na)-1].After(na[0]) {
		t.Fatalf("not-after did not move forward: %v", na)
	}
}

// TestVaultOutage stops the Vault process (SIGSTOP: unreachable, requests
// time out) while terminator serves a PKI certificate: traffic continues on
// the cached certificate and the reference is reported stale; once Vault
// runs again, renewals resume.
func TestVaultOutage(t *testing.T) {
	m, st := newManager(t, nil)
	ref := "vault-pki:pki/issue/web?common_name=outage.example&ttl=8s"
	addr, _ := serve(t, m, ref)
	roots := vaultRoots(t)
	first := served(t, addr, "outage.example", roots)
	l := tu.StartLoad(roots, "https://"+addr+"/", "outage.example", 3, 3)
	resume := pauseVault(t)
	waitFor(t, 20*time.Second, "the reference to be reported stale", func() bool { return st.err(ref) != nil })
	if !strings.Contains(st.err(ref).Error(), "unreachable") {
		t.Fatalf("stale reason: %v", st.err(ref))
	}
	if c := served(t, addr, "outage.example", roots); !c.Equal(first) {
		t.Fatal("the certificate changed while Vault was down")
	}
	resume()
	waitFor(t, 20*time.Second, "a renewal after Vault came back", func() bool {
		c, err := tlsLeaf(addr, "outage.example", roots)
		return err == nil && !c.Equal(first) && st.err(ref) == nil
	})
	l.Finish(t)
}

// TestAppRoleReloginAfterRevocation: the manager's token is revoked; the
// next read is denied, the manager logs in again and the read succeeds.
func TestAppRoleReloginAfterRevocation(t *testing.T) {
	roleID, secretID := approleCreds(t)
	m, _ := newManager(t, &vault.Auth{Method: "approle", RoleID: roleID, SecretID: secretID})
	kvPut(t, "tls/relogin", map[string]any{"ca": "x"})
	if _, err := m.Secret(context.Background(), "vault:secret/data/tls/relogin?field=ca"); err != nil {
		t.Fatal(err)
	}
	// Revoke every token of the role: what the manager holds now is dead.
	acc, err := devVault.root.Logical().List("auth/token/accessors")
	if err != nil {
		t.Fatal(err)
	}
	revoked := 0
	for _, a := range acc.Data["keys"].([]any) {
		info, err := devVault.root.Logical().Write("auth/token/lookup-accessor", map[string]any{"accessor": a})
		if err != nil || info == nil {
			continue
		}
		if pol, _ := info.Data["policies"].([]any); len(pol) > 0 && strings.Contains(strings.Join(toStrings(pol), ","), "terminator") {
			if _, err := devVault.root.Logical().Write("auth/token/revoke-accessor", map[string]any{"accessor": a}); err == nil {
				revoked++
			}
		}
	}
	if revoked == 0 {
		t.Fatal("found no terminator token to revoke")
	}
	if _, err := m.Secret(context.Background(), "vault:secret/data/tls/relogin?field=ca"); err != nil {
		t.Fatalf("after revocation the manager did not log in again: %v", err)
	}
}

func toStrings(xs []any) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i], _ = x.(string)
	}
	return out
}
