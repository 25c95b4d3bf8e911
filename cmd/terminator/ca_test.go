package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openssl(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestCAAndCtl makes both CAs with "terminator ca", checks every issued
// certificate with openssl, then drives a served control API with
// "terminator ctl".
func TestCAAndCtl(t *testing.T) {
	dir := t.TempDir()
	tu := func(args ...string) string {
		t.Helper()
		out, errOut, code := terminator(t, args...)
		if code != 0 {
			t.Fatalf("terminator %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	os.WriteFile(filepath.Join(dir, "pass"), []byte("s3cret\n"), 0o600)
	ca := filepath.Join(dir, "ca")
	tu("ca", "init", "--dir", ca, "--passphrase-file", filepath.Join(dir, "pass"))
	p := func(name string) string { return filepath.Join(dir, name) }
	tu("ca", "issue-server", "--dir", ca, "--passphrase-file", p("pass"), "--cn", "amp-1", "--ip", "127.0.0.1", "--out", p("srv"))
	tu("ca", "issue-client", "--dir", ca, "--passphrase-file", p("pass"), "--cn", "controller", "--out", p("ctl"))
	tu("ca", "issue-client", "--dir", ca, "--passphrase-file", p("pass"), "--cn", "fired", "--out", p("fired"))

	for _, c := range []struct{ args []string }{
		{[]string{"verify", "-CAfile", "ca/server-ca.pem", "-purpose", "sslserver", "srv.pem"}},
		{[]string{"verify", "-CAfile", "ca/client-ca.pem", "-purpose", "sslclient", "ctl.pem"}},
	} {
		if out, err := openssl(t, dir, c.args...); err != nil || !strings.Contains(out, ": OK") {
			t.Fatalf("openssl %v: %v %s", c.args, err, out)
		}
	}
	for _, c := range [][]string{
		{"verify", "-CAfile", "ca/server-ca.pem", "-purpose", "sslclient", "srv.pem"}, // a server cert is no client cert
		{"verify", "-CAfile", "ca/client-ca.pem", "-purpose", "sslserver", "ctl.pem"},
		{"verify", "-CAfile", "ca/server-ca.pem", "ctl.pem"}, // the two CAs are apart
	} {
		if out, err := openssl(t, dir, c...); err == nil {
			t.Fatalf("openssl %v accepted: %s", c, out)
		}
	}
	purposes, _ := openssl(t, dir, "x509", "-in", "ca/server-ca.pem", "-noout", "-purpose")
	if !strings.Contains(purposes, "SSL server CA : Yes") {
		t.Fatalf("server CA purposes:\n%s", purposes)
	}
	if info, _ := os.Stat(ca); info.Mode().Perm() != 0o700 {
		t.Fatalf("CA directory mode %v", info.Mode().Perm())
	}
	for _, k := range []string{"server-ca.key", "client-ca.key"} {
		info, _ := os.Stat(filepath.Join(ca, k))
		data, _ := os.ReadFile(filepath.Join(ca, k))
		if info.Mode().Perm() != 0o600 || !strings.Contains(string(data), "ENCRYPTED PRIVATE KEY") {
			t.Fatalf("%s: mode %v, encrypted %v", k, info.Mode().Perm(), strings.Contains(string(data), "ENCRYPTED"))
		}
	}
	// A CSR signed by the server CA (the CertificateGenerator).
	if out, err := openssl(t, dir, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "amp9.key", "-subj", "/CN=amp-9", "-out", "amp9.csr"); err != nil {
		t.Fatal(out)
	}
	tu("ca", "sign", "--dir", ca, "--passphrase-file", p("pass"), "--out", p("amp9.pem"), p("amp9.csr"))
	if out, err := openssl(t, dir, "verify", "-CAfile", "ca/server-ca.pem", "-purpose", "sslserver", "amp9.pem"); err != nil {
		t.Fatalf("signed CSR: %s", out)
	}
	tu("ca", "revoke", "--dir", ca, "--passphrase-file", p("pass"), p("fired.pem"))
	if out, err := openssl(t, dir, "verify", "-crl_check", "-CRLfile", "ca/client-ca.crl", "-CAfile", "ca/client-ca.pem", "fired.pem"); err == nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoked certificate passed openssl's CRL check: %s", out)
	}

	// Serve a control API and drive it.
	ctlBind := freePort(t)
	cfg := fmt.Sprintf(`control:
  bind: %q
  tls_container_ref: file://%s
  client_ca_ref: file://%s/client-ca.pem
  client_crl_ref: file://%s/client-ca.crl
  state_dir: %s
listeners: []
`, ctlBind, p("srv-combined.pem"), ca, ca, p("state"))
	os.WriteFile(p("t.yaml"), []byte(cfg), 0o600)
	cmd := exec.Command(binary, "serve", "--config", p("t.yaml"))
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "control API listening") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("control API did not start")
	}
	ctl := func(cert string, args ...string) (string, string, int) {
		return terminator(t, append([]string{"ctl", "--server", "https://" + ctlBind, "--cert", p(cert), "--ca", filepath.Join(ca, "server-ca.pem"), "--server-name", "127.0.0.1"}, args...)...)
	}
	webBind := freePort(t)
	os.WriteFile(p("dp.yaml"), []byte(fmt.Sprintf("listeners:\n  - {name: web, protocol: HTTP, bind: %q, default_pool: app}\npools:\n  - {name: app, members: [{address: 127.0.0.1, protocol_port: 9}]}\n", webBind)), 0o600)
	if out, errOut, code := ctl("ctl-combined.pem", "apply", p("dp.yaml")); code != 0 || !strings.Contains(out, "version:") {
		t.Fatalf("ctl apply: %d %s %s", code, out, errOut)
	}
	if out, _, code := ctl("ctl-combined.pem", "listeners"); code != 0 || !strings.Contains(out, "web") || !strings.Contains(out, webBind) {
		t.Fatalf("ctl listeners: %s", out)
	}
	os.WriteFile(p("bad.yaml"), []byte("listeners:\n  - {name: web, protocol: HTTP, bind: \"127.0.0.1:1\", default_pool: nope}\npools: []\n"), 0o600)
	if _, errOut, code := ctl("ctl-combined.pem", "apply", p("bad.yaml")); code != 1 || !strings.Contains(errOut, `listeners[0].default_pool: no pool has the name or id "nope"`) {
		t.Fatalf("ctl apply of a bad config: %d %s", code, errOut)
	}
	// Flags after the subcommand; members as a bare list; a PKCS#12
	// upload with its passphrase (issue 11, item 17).
	if out, errOut, code := ctl("ctl-combined.pem", "status", "--json"); code != 0 || !json.Valid([]byte(out)) || !strings.Contains(out, `"config_version"`) {
		t.Fatalf("ctl status --json: %d %q %s", code, out, errOut)
	}
	os.WriteFile(p("members.yaml"), []byte("- {address: 127.0.0.1, protocol_port: 10}\n- {address: 127.0.0.1, protocol_port: 11}\n"), 0o600)
	if _, errOut, code := ctl("ctl-combined.pem", "members", "put", "app", p("members.yaml")); code != 0 {
		t.Fatalf("ctl members put (bare list): %d %s", code, errOut)
	}
	if out, _, _ := ctl("ctl-combined.pem", "pools"); !strings.Contains(out, "127.0.0.1:11") {
		t.Fatalf("members not replaced: %s", out)
	}
	if out, err := openssl(t, dir, "pkcs12", "-export", "-in", "srv.pem", "-inkey", "srv.key", "-passout", "pass:p12pass", "-out", "srv.p12"); err != nil {
		t.Fatal(out)
	}
	os.WriteFile(p("p12.pass"), []byte("p12pass\n"), 0o600)
	if out, errOut, code := ctl("ctl-combined.pem", "cert", "upload", "amp", p("srv.p12"), "--p12", "--passphrase-file", p("p12.pass")); code != 0 || !strings.Contains(out, "file://") {
		t.Fatalf("ctl cert upload --p12 --passphrase-file: %d %s %s", code, out, errOut)
	}
	if _, errOut, code := ctl("ctl-combined.pem", "cert", "upload", "amp2", p("srv.p12"), "--p12"); code != 1 || !strings.Contains(errOut, "passphrase") {
		t.Fatalf("a PKCS#12 without its passphrase: %d %s", code, errOut)
	}
	if _, errOut, code := ctl("srv-combined.pem", "status"); code != 1 || !strings.Contains(errOut, "certificate") {
		t.Fatalf("a server certificate was accepted as a client: %d %s", code, errOut)
	}
	if _, errOut, code := ctl("fired-combined.pem", "status"); code != 1 {
		t.Fatalf("a revoked client was accepted: %s", errOut)
	}
}
