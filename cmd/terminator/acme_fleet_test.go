package main

import (
	"fmt"
	"math/big"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// TestACMEFleetSharesVault: two instances keep their ACME state in one
// Vault, with an account that needs external account binding and the
// TLS-ALPN-01 challenge. Pebble resolves every name to instance A's
// address, so:
//  1. B obtains fleet.test, and A, which does not serve that name, answers
//     B's challenge from Vault;
//  2. A then serves fleet.test from Vault, the same certificate, without
//     an order; a name both add at the same moment is ordered once;
//  3. B (the issuer) is killed; A renews fleet.test on its own.
func TestACMEFleetSharesVault(t *testing.T) {
	dir := t.TempDir()
	vaultAddr := tu.StartVault(t)
	tlsPort := tu.FreePort(t)
	const life = 40 * time.Second
	pebble := tu.StartPebble(t, tu.PebbleOptions{HTTPPort: tu.FreePort(t), TLSPort: tlsPort, Validity: life,
		EAB: map[string]string{"kid-1": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"}})
	hmac := tu.WriteFile(t, dir, "eab.key", []byte("zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W\n"))
	backend := tu.EchoBackend(t)
	_, backendPort := tu.HostPort(t, backend.URL)

	type instance struct {
		name, ip, admin, cfg string
		proc                 *process
	}
	write := func(in *instance, refs ...string) {
		sni := ""
		for _, r := range refs[1:] {
			sni += "\n      - " + r
		}
		if sni != "" {
			sni = "\n    sni_container_refs:" + sni
		}
		tu.WriteAtomic(t, in.cfg, []byte(fmt.Sprintf(`
admin: {bind: %s}
vault: {address: %s}
acme:
  directory: %s
  agree_tos: true
  ca_cert: %s
  eab: {key_id: kid-1, hmac_key_file: %s}
  storage: vault://secret/terminator/acme
  check_interval: 1000
listeners:
  - name: https
    protocol: TERMINATED_HTTPS
    bind: %s:%d
    default_tls_container_ref: %s%s
    default_pool: app
pools:
  - {name: app, members: [{address: 127.0.0.1, protocol_port: %s}]}
`, in.admin, vaultAddr, pebble.Directory, pebble.CAFile, hmac, in.ip, tlsPort, refs[0], sni, backendPort)))
	}
	a := &instance{name: "A", ip: "127.0.0.1", admin: freePort(t), cfg: dir + "/a.yaml"}
	b := &instance{name: "B", ip: "127.0.0.2", admin: freePort(t), cfg: dir + "/b.yaml"}
	write(a, "acme://a-only.test")
	write(b, "acme://fleet.test")
	// Every name resolves to A, so A must be listening before B orders:
	// Pebble validates at once, and a refused connection would push B's
	// next attempt a minute away.
	a.proc = startServe(t, a.cfg, "VAULT_TOKEN=root")
	waitFor(t, 30*time.Second, "A listening", func() bool {
		c, err := net.Dial("tcp", net.JoinHostPort(a.ip, fmt.Sprint(tlsPort)))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	b.proc = startServe(t, b.cfg, "VAULT_TOKEN=root")
	serial := func(in *instance, name string) *big.Int {
		s, err := handshake(fmt.Sprintf("%s:%d", in.ip, tlsPort), name)
		if err != nil || !s.verifies(pebble.Roots(t), name) {
			return nil
		}
		return s.serial
	}
	orders := func(in *instance) float64 { return metric(t, in.admin, "terminator_acme_orders_total", `result="ok"`) }

	// 1. B orders fleet.test; its challenge reaches A, which answers it.
	took := waitFor(t, 60*time.Second, "B serving fleet.test from Pebble", func() bool { return serial(b, "fleet.test") != nil })
	waitFor(t, 30*time.Second, "A serving a-only.test", func() bool { return serial(a, "a-only.test") != nil })
	fleet := serial(b, "fleet.test")
	t.Logf("B obtained fleet.test in %s through A's answer", took.Round(time.Millisecond))
	if oa, ob := orders(a), orders(b); oa != 1 || ob != 1 {
		t.Fatalf("orders A=%v B=%v, want one each (a-only.test, fleet.test)", oa, ob)
	}
	issued := pebble.Issued(t)

	// 2. A adds fleet.test (already in Vault) and both add race.test at once.
	write(a, "acme://a-only.test", "acme://fleet.test", "acme://race.test")
	write(b, "acme://fleet.test", "acme://race.test")
	var wg sync.WaitGroup
	for _, in := range []*instance{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = in.proc.cmd.Process.Signal(syscall.SIGHUP) }()
	}
	wg.Wait()
	waitFor(t, 15*time.Second, "A serving fleet.test", func() bool { s := serial(a, "fleet.test"); return s != nil && s.Cmp(fleet) == 0 })
	took = waitFor(t, 60*time.Second, "both serving race.test", func() bool {
		sa, sb := serial(a, "race.test"), serial(b, "race.test")
		return sa != nil && sb != nil && sa.Cmp(sb) == 0
	})
	t.Logf("race.test served by both %s after the reloads", took.Round(time.Millisecond))
	if n := pebble.Issued(t) - issued; n != 1 {
		t.Errorf("Pebble issued %d certificates for the reloads, want 1 (race.test, once)", n)
	}
	if total := orders(a) + orders(b); total != 3 {
		t.Errorf("orders A+B = %v, want 3", total)
	}

	// 3. B, which issued fleet.test, is lost; A renews it alone.
	_ = b.proc.cmd.Process.Kill()
	waitFor(t, life, "A serving a renewed fleet.test", func() bool { s := serial(a, "fleet.test"); return s != nil && s.Cmp(fleet) != 0 })
	t.Logf("A renewed fleet.test after B was killed; Pebble issued %d certificates in all", pebble.Issued(t))
	if _, err := os.Stat(dir + "/acme"); err == nil {
		t.Error("a file store was written although the storage is Vault")
	}
}
