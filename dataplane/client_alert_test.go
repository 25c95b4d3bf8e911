package dataplane_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
)

// TestClientCertificateAlerts: a refused client certificate gets the alert
// OpenSSL sends, so that a client can tell why: unknown_ca,
// certificate_expired, certificate_revoked. Each refusal is counted by
// reason. (crypto/tls sends bad_certificate for every VerifyConnection
// error, and encrypts TLS 1.3 alerts, so a revoked certificate gets
// certificate_revoked on TLS 1.2 and bad_certificate on TLS 1.3.)
func TestClientCertificateAlerts(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	clientCA, otherCA := tu.CA(t, "clients"), tu.CA(t, "strangers")
	issue := func(ca *pki.CA, r pki.Request) tls.Certificate {
		t.Helper()
		r.Usage = pki.ClientAuth
		c, k, err := ca.Issue(r)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}
	}
	good := issue(clientCA, pki.Request{CommonName: "good"})
	revoked := issue(clientCA, pki.Request{CommonName: "revoked"})
	expired := issue(clientCA, pki.Request{CommonName: "expired", NotBefore: time.Now().Add(-72 * time.Hour), Validity: 24 * time.Hour})
	stranger := issue(otherCA, pki.Request{CommonName: "stranger"})
	crl, err := clientCA.CRL([]*x509.Certificate{revoked.Leaf}, 0)
	if err != nil {
		t.Fatal(err)
	}
	tu.WriteFile(t, h.dir, "clients.pem", pki.CertPEM(clientCA.Cert))
	tu.WriteFile(t, h.dir, "clients.crl", crl)
	h.mustApply(oneListener(`    client_authentication: MANDATORY
    client_ca_tls_container_ref: file://{{dir}}/clients.pem
    client_crl_container_ref: file://{{dir}}/clients.crl`, "{address: 127.0.0.1, protocol_port: 9}"))
	addr := h.addr("127.0.0.1:0")

	cases := []struct {
		name    string
		cert    tls.Certificate
		version uint16
		alert   string // as Go's client reports the alert; "" for none
		reason  string
	}{
		{"good", good, tls.VersionTLS13, "", ""},
		{"unknown CA, TLS 1.2", stranger, tls.VersionTLS12, "unknown certificate authority", "unknown_ca"},
		{"unknown CA, TLS 1.3", stranger, tls.VersionTLS13, "unknown certificate authority", "unknown_ca"},
		{"expired, TLS 1.2", expired, tls.VersionTLS12, "expired certificate", "expired"},
		{"expired, TLS 1.3", expired, tls.VersionTLS13, "expired certificate", "expired"},
		{"revoked, TLS 1.2", revoked, tls.VersionTLS12, "revoked certificate", "revoked"},
		{"revoked, TLS 1.3", revoked, tls.VersionTLS13, "bad certificate", "revoked"},
	}
	want := map[string]float64{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := dialClient(addr, tu.Pool(h.ca), tc.cert, tc.version)
			if tc.alert == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "tls: "+tc.alert) {
				t.Fatalf("got %v; want the alert %q", err, tc.alert)
			}
			want[tc.reason]++
		})
	}
	for reason, n := range want {
		label := "client_certificate_" + reason
		deadline := time.Now().Add(3 * time.Second)
		for promtest.ToFloat64(h.mx.HandshakeFailures.WithLabelValues("web", label)) != n {
			if time.Now().After(deadline) {
				t.Fatalf("%s = %v, want %v", label, promtest.ToFloat64(h.mx.HandshakeFailures.WithLabelValues("web", label)), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// dialClient handshakes with cert at exactly version and reads once, since
// a TLS 1.3 client learns of its refusal only after its Finished.
func dialClient(addr string, roots *x509.CertPool, cert tls.Certificate, version uint16) error {
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "site.example", MinVersion: version, MaxVersion: version,
		// Sent whatever CAs the server names, as a misconfigured client would.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }})
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	if _, err = conn.Read(make([]byte, 1)); err != nil {
		if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
			return nil
		}
		return fmt.Errorf("read: %w", err)
	}
	return nil
}
