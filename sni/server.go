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
	case ClientAuthOptional, ClientAuthMandatory:
	default:
		return nil, fmt.Errorf("sni: unknown client authentication mode %q", o.ClientAuth)
	}
	if len(o.ClientCAs) == 0 {
		// Never fall back to no client authentication.
		return nil, fmt.Errorf("sni: client authentication %s needs a client CA", o.ClientAuth)
	}
	v := NewClientVerifier(o.ClientCAs, o.Revocations, o.ClientAuth == ClientAuthMandatory)
	v.Now = o.Now
	v.Configure(cfg)
	return cfg, nil
}
