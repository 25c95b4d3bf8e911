package main

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/terminator-proxy/terminator/config"
	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
)

// TestREADMEExamples keeps the README's configuration examples true (issue
// 11, item 18: the main example failed check on a literal "..." cipher
// placeholder). Every complete example (a top-level listeners or control
// section) must validate; those whose references are all files are run
// through terminator check with every file they name created under a
// temporary root. Indented fragments are validated inside a minimal
// listener or pool.
func TestREADMEExamples(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(blocks) < 5 {
		t.Fatalf("found %d YAML examples", len(blocks))
	}
	checked := 0
	for i, m := range blocks {
		example := m[1]
		top := regexp.MustCompile(`(?m)^(listeners|control):`).MatchString(example)
		switch {
		case strings.HasPrefix(example, "    l7policies:"):
			example = "listeners:\n  - name: x\n    protocol: HTTP\n    bind: ':80'\n" + example +
				"pools:\n  - {name: api, members: [{address: 10.0.0.1, protocol_port: 80}]}\n"
		case strings.HasPrefix(example, "    healthmonitor:"):
			example = "listeners: [{name: x, protocol: HTTP, bind: ':80', default_pool: app}]\npools:\n  - name: app\n" + example
		case !top:
			continue // a section on its own (vault:), validated with the examples that use it
		}
		if _, _, err := config.Parse([]byte(example)); err != nil {
			t.Errorf("README YAML example %d does not validate:\n%v\n---\n%s", i+1, err, m[1])
			continue
		}
		if !top || strings.Contains(example, "https://barbican") {
			continue // fragments, and Barbican hrefs (checked against a real Barbican in backends/barbican)
		}
		root := t.TempDir()
		rooted := strings.NewReplacer("/etc/terminator", root+"/etc/terminator", "/var/lib/terminator", root+"/var/lib/terminator").Replace(example)
		makeFiles(t, rooted)
		path := tu.WriteFile(t, root, "example.yaml", []byte(rooted))
		out, errOut, code := terminator(t, "check", "--config", path)
		if code != 0 {
			t.Errorf("README example %d fails terminator check: exit %d\n%s%s---\n%s", i+1, code, out, errOut, m[1])
		}
		checked++
	}
	if checked < 2 {
		t.Fatalf("only %d examples were run through check", checked)
	}
}

// makeFiles creates every file an example names, by its role: bundles
// (.pem, .p12), client CAs and CRLs, ticket keys, the control API's
// server certificate, CA and CRL, and the state directory.
func makeFiles(t *testing.T, example string) {
	t.Helper()
	ca := tu.CA(t, "README CA")
	write := func(path string, data []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range regexp.MustCompile(`(?m)(\w+):\s*(?:\[)?(?:file://)?(/[^\s\],#]+)`).FindAllStringSubmatch(example, -1) {
		field, path := m[1], m[2]
		switch {
		case field == "state_dir":
			if err := os.MkdirAll(path, 0o700); err != nil {
				t.Fatal(err)
			}
		case field == "session_ticket_keys_file":
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			write(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"))
		case strings.Contains(field, "ca") && strings.HasSuffix(path, ".pem"):
			write(path, pki.CertPEM(ca.Cert))
		case strings.HasSuffix(path, ".crl"):
			crl, err := ca.CRL(nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			write(path, crl)
		case strings.HasSuffix(path, ".p12"):
			c, k := tu.Leaf(t, ca, pki.ECDSAP256, "shop.example")
			der, err := pkcs12.Modern.Encode(k, c, []*x509.Certificate{ca.Cert}, "")
			if err != nil {
				t.Fatal(err)
			}
			write(path, der)
		case strings.HasSuffix(path, ".pem"):
			c, k := tu.Leaf(t, ca, pki.ECDSAP256, "www.example", "amp-1")
			write(path, append(pki.CertPEM(c), tu.KeyPEM(t, k)...))
		}
	}
}
