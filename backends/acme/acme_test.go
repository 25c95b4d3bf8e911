package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	acmeapi "golang.org/x/crypto/acme"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
)

func TestParseRef(t *testing.T) {
	for ref, want := range map[string]string{
		"acme://Shop.Example.com":                                   "shop.example.com",
		"acme://shop.example.com?san=www.shop.example.com&san=a.b":  "shop.example.com,a.b,www.shop.example.com",
		"acme://shop.example.com?san=shop.example.com":              "shop.example.com",
		"acme://bücher.example":                                     "xn--bcher-kva.example",
		"acme://shop.example.com/":                                  "shop.example.com",
		"acme://*.example.com":                                      "error: DNS-01",
		"acme://shop.example.com:443":                               "error: without a port",
		"acme://192.0.2.1":                                          "error: IP addresses",
		"acme://shop.example.com/path":                              "error: acme://NAME",
		"acme://shop.example.com?sans=x":                            "error: unknown parameter",
		"acme://":                                                   "error: acme://NAME",
		"acme://shop.example.com?san=*.example.com":                 "error: DNS-01",
		"acme://a.example?san=" + strings.Repeat("x", 300) + ".com": "error: not a host name",
	} {
		names, err := parseRef(ref)
		got := strings.Join(names, ",")
		if err != nil {
			got = "error: " + err.Error()
		}
		if !strings.HasPrefix(want, "error: ") && got != want || strings.HasPrefix(want, "error: ") && !strings.Contains(got, strings.TrimPrefix(want, "error: ")) {
			t.Errorf("parseRef(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestFileStore(t *testing.T) {
	dir := t.TempDir()
	open := func() tu.SharedStore {
		s, err := NewFileStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tu.CheckStore(t, open(), open)
	s := open().(*FileStore)
	for _, key := range []string{"../escape", "a/../../b", "Upper", "a//b", "/abs", "a/./b", ""} {
		if err := s.Store(context.Background(), key, []byte("x")); err == nil {
			t.Errorf("Store(%q) accepted a key outside the alphabet", key)
		}
	}
	if err := s.Store(context.Background(), "certificates/a.example", []byte("k")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "certificates", "a.example"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("stored file mode %v (%v), want 0600: it holds a private key", fi.Mode(), err)
	}
	if _, err := NewFileStore("relative/dir"); err == nil {
		t.Error("a relative store directory was accepted")
	}
}

// TestChallengeAnswersAreShared: an answer one instance presents is found
// by another instance on the same store; unknown and malformed tokens are
// not answered, and withdrawn answers are gone from both.
func TestChallengeAnswersAreShared(t *testing.T) {
	store, err := NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{Directory: "https://ca.invalid/dir", Store: store})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{Directory: "https://ca.invalid/dir", Store: store})
	if err != nil {
		t.Fatal(err)
	}
	key, err := newKey("", false)
	if err != nil {
		t.Fatal(err)
	}
	cl := &acmeapi.Client{Key: key}
	ctx := context.Background()
	token := "Tok3n_with-Mixed-Case-0123456789abcdef"
	undoHTTP, err := a.chal.present(ctx, cl, "shop.example", &acmeapi.Challenge{Type: HTTP01, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	undoALPN, err := a.chal.present(ctx, cl, "shop.example", &acmeapi.Challenge{Type: TLSALPN01, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := cl.HTTP01ChallengeResponse(token)
	for name, m := range map[string]*Manager{"presenter": a, "other instance": b} {
		if got, ok := m.HTTP01(token); !ok || got != want {
			t.Errorf("%s: HTTP01 = %q %v, want %q", name, got, ok, want)
		}
		if _, ok := m.HTTP01(strings.ToLower(token)); ok {
			t.Errorf("%s: a token differing in case was answered", name)
		}
		if _, ok := m.HTTP01("../../etc/passwd"); ok {
			t.Errorf("%s: a malformed token was answered", name)
		}
		cert, ok := m.TLSALPN01("SHOP.example")
		if !ok {
			t.Errorf("%s: no acme-tls/1 certificate", name)
			continue
		}
		leaf, err := parseLeaf(cert)
		if err != nil || leaf.VerifyHostname("shop.example") != nil {
			t.Errorf("%s: acme-tls/1 certificate for the wrong name: %v", name, err)
		}
	}
	undoHTTP()
	undoALPN()
	if _, ok := b.HTTP01(token); ok {
		t.Error("a withdrawn HTTP-01 answer is still given")
	}
	if _, ok := b.TLSALPN01("shop.example"); ok {
		t.Error("a withdrawn TLS-ALPN-01 certificate is still given")
	}
}

// TestPlaceholderUntilIssued: Bundle never waits for a CA; it serves a
// self-signed placeholder, and a certificate stored by another instance
// replaces it at the next check and asks for a reload.
func TestPlaceholderUntilIssued(t *testing.T) {
	dir := t.TempDir()
	store, _ := NewFileStore(dir)
	m, err := New(Options{Directory: "https://127.0.0.1:1/dir", Store: store, Check: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const ref = "acme://shop.example?san=www.shop.example"
	start := time.Now()
	b, err := m.Bundle(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > time.Second || !strings.Contains(b.Leaf().Subject.Organization[0], "pending") {
		t.Fatalf("Bundle took %s and returned %v, want a placeholder at once", time.Since(start), b.Leaf().Subject)
	}
	m.Watch([]string{ref})
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()

	ca := tu.CA(t, "Other instance's CA")
	leaf, key := tu.Leaf(t, ca, pki.ECDSAP256, "shop.example", "www.shop.example")
	data := append(tu.KeyPEM(t, key), pemCert(leaf.Raw)...)
	data = append(data, pemCert(ca.Cert.Raw)...)
	if err := store.Store(ctx, certKey([]string{"shop.example", "www.shop.example"}), data); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Changed():
	case <-time.After(5 * time.Second):
		t.Fatal("no reload asked for after another instance stored the certificate")
	}
	if b, _ := m.Bundle(ctx, ref); b.Leaf().SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatal("the stored certificate is not served")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func parseLeaf(c *tls.Certificate) (*x509.Certificate, error) {
	return x509.ParseCertificate(c.Certificate[0])
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
