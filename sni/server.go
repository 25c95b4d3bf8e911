package sni

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/terminator-proxy/terminator/certs"
)

// Client-authentication modes, as Octavia names them.
const (
	ClientAuthNone      = "NONE"
	ClientAuthOptional  = "OPTIONAL"
	ClientAuthMandatory = "MANDATORY"
)

// ErrClientCertificate wraps every client-certificate rejection.
var ErrClientCertificate = errors.New("sni: client certificate rejected")

// ServerOptions describe one listener's TLS policy.
type ServerOptions struct {
	Store *Store
	// ClientAuth is NONE, OPTIONAL or MANDATORY. OPTIONAL and MANDATORY
	// require ClientCAs.
	ClientAuth string
	ClientCAs  []*x509.Certificate
	// Revocations, if not nil, rejects listed client certificates.
	Revocations *certs.Revocations

	MinVersion, MaxVersion uint16
	// CipherSuites apply to TLS 1.2 and older; nil means Go's defaults.
	CipherSuites []uint16
	NextProtos   []string
	// Now returns the time for verification; nil means time.Now.
	Now func() time.Time
}

// NewServerConfig returns the listener's *tls.Config. The result must not be
// modified; it is meant to be returned from a GetConfigForClient callback
// as is.
func NewServerConfig(o ServerOptions) (*tls.Config, error) {
	if o.Store == nil {
		return nil, errors.New("sni: no certificate store")
	}
	cfg := &tls.Config{
		GetCertificate: o.Store.GetCertificate,
		MinVersion:     o.MinVersion,
		MaxVersion:     o.MaxVersion,
		CipherSuites:   o.CipherSuites,
		NextProtos:     o.NextProtos,
	}
	switch o.ClientAuth {
	case "", ClientAuthNone:
		cfg.ClientAuth = tls.NoClientCert
		return cfg, nil
	case ClientAuthOptional:
		cfg.ClientAuth = tls.RequestClientCert
	case ClientAuthMandatory:
		cfg.ClientAuth = tls.RequireAnyClientCert
	default:
		return nil, fmt.Errorf("sni: unknown client authentication mode %q", o.ClientAuth)
	}
	if len(o.ClientCAs) == 0 {
		// Never fall back to no client authentication.
		return nil, fmt.Errorf("sni: client authentication %s needs a client CA", o.ClientAuth)
	}
	v := &clientVerifier{
		roots:     x509.NewCertPool(),
		mandatory: o.ClientAuth == ClientAuthMandatory,
		revoked:   o.Revocations,
		now:       o.Now,
	}
	for _, ca := range o.ClientCAs {
		v.roots.AddCert(ca)
	}
	if v.now == nil {
		v.now = time.Now
	}
	// Verification runs in VerifyConnection, which crypto/tls calls on
	// resumed sessions too (VerifyPeerCertificate it does not), so a
	// resumed session is checked against the current CA and CRL.
	cfg.VerifyConnection = v.verify
	cfg.ClientCAs = v.roots // advertised in the CertificateRequest
	return cfg, nil
}

type clientVerifier struct {
	roots     *x509.CertPool
	mandatory bool
	revoked   *certs.Revocations
	now       func() time.Time
}

func (v *clientVerifier) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		if v.mandatory {
			return fmt.Errorf("%w: no certificate presented", ErrClientCertificate)
		}
		return nil
	}
	leaf := cs.PeerCertificates[0]
	opts := x509.VerifyOptions{
		Roots:         v.roots,
		Intermediates: x509.NewCertPool(),
		CurrentTime:   v.now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := leaf.Verify(opts)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrClientCertificate, err)
	}
	for _, c := range chains[0] {
		if v.revoked.IsRevoked(c) {
			return fmt.Errorf("%w: certificate %q (serial %x) is revoked", ErrClientCertificate, c.Subject.String(), c.SerialNumber)
		}
	}
	return nil
}
