package certs_test

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
)

func TestParseRejectsBadInput(t *testing.T) {
	c := newChain(t, pki.ECDSAP256)
	other := newChain(t, pki.ECDSAP256)
	certPEM := pki.CertPEM(c.leaf)
	p12pw, err := pkcs12.Modern.Encode(c.keyObj, c.leaf, nil, "pw")
	if err != nil {
		t.Fatal(err)
	}
	p12, err := pkcs12.Modern.Encode(c.keyObj, c.leaf, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	unnamed := issueUnnamed(t, c.int2)

	cases := []struct {
		name    string
		data    []byte
		pass    []byte
		want    error
		message string
	}{
		{"wrong key", cat(certPEM, other.key), nil, certs.ErrKeyMismatch, "does not match"},
		{"missing key", certPEM, nil, certs.ErrNoKey, "no private key"},
		{"missing certificate", c.key, nil, certs.ErrNoCertificate, "no certificate"},
		{"wrong PKCS#12 passphrase", p12pw, []byte("nope"), certs.ErrWrongPassphrase, "wrong passphrase"},
		{"PKCS#12 passphrase missing", p12pw, nil, certs.ErrNeedsPassphrase, "passphrase"},
		{"truncated PKCS#12", p12[:len(p12)/2], nil, certs.ErrUnreadable, "PKCS#12"},
		{"chain that does not link", cat(certPEM, c.key, pki.CertPEM(c.int2.Cert, other.int1.Cert)), nil, certs.ErrChainBroken, "int1"},
		{"garbage", []byte("\x00\x01 this is not a certificate \xff"), nil, certs.ErrUnreadable, "unreadable"},
		{"garbage PEM", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), nil, certs.ErrUnreadable, "PEM block 1"},
		{"no host name", unnamed, nil, certs.ErrNoHostName, "no CN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := certs.Parse("file:///etc/x.pem", tc.data, tc.pass)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var re *certs.RefError
			if !errors.As(err, &re) || re.Ref != "file:///etc/x.pem" {
				t.Fatalf("error %q does not name the ref", err)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("error %q lacks %q", err, tc.message)
			}
		})
	}
}

// issueUnnamed returns a PEM bundle whose certificate has no CN and no DNS
// name (only an IP address), which Octavia rejects as MissingCertSubject.
func issueUnnamed(t *testing.T, ca *pki.CA) []byte {
	t.Helper()
	c, k, err := ca.Issue(pki.Request{IPAddresses: ipList("192.0.2.1"), Usage: pki.ServerAuth})
	if err != nil {
		t.Fatal(err)
	}
	return cat(pki.CertPEM(c), testutil.KeyPEM(t, k))
}

func TestCheckValidity(t *testing.T) {
	ca := testutil.CA(t, "ca")
	c, k, err := ca.Issue(pki.Request{CommonName: "old.example", DNSNames: []string{"old.example"}, NotBefore: time.Now().Add(-48 * time.Hour), Validity: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	b, err := certs.Parse("r", cat(pki.CertPEM(c), testutil.KeyPEM(t, k)), nil)
	if err != nil {
		t.Fatalf("an expired certificate must still parse: %v", err)
	}
	if err := b.CheckValidity(time.Now()); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("CheckValidity = %v, want expired", err)
	}
	if err := b.CheckValidity(time.Now().Add(-36 * time.Hour)); err != nil {
		t.Fatalf("valid at issue time: %v", err)
	}
	if err := b.CheckValidity(time.Now().Add(-72 * time.Hour)); err == nil || !strings.Contains(err.Error(), "not valid before") {
		t.Fatalf("CheckValidity before NotBefore = %v", err)
	}
}

func TestCRL(t *testing.T) {
	ca := testutil.CA(t, "clients")
	other := testutil.CA(t, "other")
	good, _, _ := ca.Issue(pki.Request{CommonName: "good", Usage: pki.ClientAuth})
	bad, _, _ := ca.Issue(pki.Request{CommonName: "bad", Usage: pki.ClientAuth})
	crl, err := ca.CRL([]*x509.Certificate{bad}, 0)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := certs.ParseCRL("crl", crl, []*x509.Certificate{ca.Cert})
	if err != nil {
		t.Fatal(err)
	}
	if !rev.IsRevoked(bad) || rev.IsRevoked(good) {
		t.Fatalf("revoked(bad)=%v revoked(good)=%v", rev.IsRevoked(bad), rev.IsRevoked(good))
	}
	if _, err := certs.ParseCRL("crl", crl, []*x509.Certificate{other.Cert}); !errors.Is(err, certs.ErrCRLSignature) {
		t.Fatalf("CRL checked against the wrong CA: %v", err)
	}
	if _, err := certs.ParseCRL("crl", []byte("junk"), []*x509.Certificate{ca.Cert}); !errors.Is(err, certs.ErrUnreadable) {
		t.Fatalf("junk CRL: %v", err)
	}
}

func TestRegistryUnknownScheme(t *testing.T) {
	r := certs.NewRegistry()
	_, err := r.Bundle(t.Context(), "ftp://x/y")
	if !errors.Is(err, certs.ErrUnsupportedRef) || !strings.Contains(err.Error(), "ftp://x/y") {
		t.Fatalf("got %v", err)
	}
}
