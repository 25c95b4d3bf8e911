package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
)

// TestCheckReportsEverything: terminator check prints every problem, with
// its path and line, in one run (issue 11, item 14). Before: a decode
// error hid the validator's problems, a control section whose files did
// not exist passed, a CA certificate passed as a server certificate,
// YAML syntax errors named the wrong line, and "50s" as a timeout said
// "cannot unmarshal !!str" without the unit.
func TestCheckReportsEverything(t *testing.T) {
	dir := t.TempDir()
	ca := tu.CA(t, "ca")
	tu.Bundle(t, dir, "good.pem", ca, "good.example")
	tu.WriteFile(t, dir, "ca-as-server.pem", signingOnlyCA(t))
	write := func(name, body string) string {
		return tu.WriteFile(t, dir, name, []byte(strings.ReplaceAll(body, "{{dir}}", dir)))
	}
	check := func(path string, want ...string) {
		t.Helper()
		_, errOut, code := terminator(t, "check", "--config", path)
		if code != 1 {
			t.Fatalf("%s: exit %d, want 1\n%s", path, code, errOut)
		}
		for _, w := range want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%s: output lacks %q:\n%s", path, w, errOut)
			}
		}
	}

	check(write("decode.yaml", `
listeners:
  - name: web
    protocol: HTTP
    bind: nope
    colour: red
    timeout_client_data: 50s
    default_pool: missing
`),
		`listeners[0].colour: unknown field "colour" (line 6)`,
		`listeners[0].timeout_client_data: must be a whole number of milliseconds (50000 is 50 s), not "50s" (line 7)`,
		`listeners[0].bind: must be host:port`,
		`listeners[0].default_pool: no pool has the name or id "missing"`)

	check(write("syntax.yaml", "listeners:\n  - name: web\n    protocol: HTTP\n    members:\n      - {address: 10.0.0.1, protocol_port: 80\n      - {address: 10.0.0.2}\n"),
		"YAML syntax error: line 6, column 7")
	check(write("tab.yaml", "listeners:\n  - name: web\n\tprotocol: HTTP\n"),
		"YAML syntax error: line 3, column 1")

	check(write("control.yaml", `
control:
  bind: 127.0.0.1:0
  tls_container_ref: file://{{dir}}/missing-server.pem
  client_ca_ref: file://{{dir}}/missing-ca.pem
  state_dir: {{dir}}/no/such/parent/state
listeners:
  - {name: web, protocol: TERMINATED_HTTPS, bind: "127.0.0.1:0", default_tls_container_ref: "file://{{dir}}/ca-as-server.pem"}
`),
		"control.tls_container_ref: certificate ref file://"+dir+"/missing-server.pem",
		"control.client_ca_ref: certificate ref file://"+dir+"/missing-ca.pem",
		"control.state_dir: "+dir+"/no/such/parent/state does not exist and cannot be created",
		"listeners[0].default_tls_container_ref: certificate ref file://"+dir+"/ca-as-server.pem: it is a CA certificate whose key usage allows no TLS server use")
}

// signingOnlyCA is a self-signed CA as openssl's usual CA recipes make it
// (keyUsage keyCertSign, cRLSign), with its key, in one PEM.
func signingOnlyCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "signing-only.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return append(pki.CertPEM(c), tu.KeyPEM(t, key)...)
}
