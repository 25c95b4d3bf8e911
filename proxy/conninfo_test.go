package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"slices"
	"testing"
)

// TestDNField: the subject fields L7 SSL_DN_FIELD rules compare, by
// OpenSSL short name, every value of a repeated field, none without a
// client certificate.
func TestDNField(t *testing.T) {
	withCert := &connInfo{tls: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{
		CommonName: "alice", Organization: []string{"Example"}, OrganizationalUnit: []string{"ops", "dev"}}}}}}
	for field, want := range map[string][]string{"CN": {"alice"}, "O": {"Example"}, "OU": {"ops", "dev"}, "L": nil} {
		if got := withCert.DNField(field); !slices.Equal(got, want) {
			t.Errorf("DNField(%s) = %v, want %v", field, got, want)
		}
	}
	if got := (&connInfo{tls: &tls.ConnectionState{}}).DNField("CN"); got != nil {
		t.Errorf("without a certificate: %v", got)
	}
	if got := (&connInfo{}).DNField("CN"); got != nil {
		t.Errorf("plain HTTP: %v", got)
	}
}
