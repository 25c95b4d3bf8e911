package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"
)

// ParseCABundle reads the CA certificates of a client-CA or pool-CA secret
// (PEM, possibly several, or PKCS#7).
func ParseCABundle(ref string, data []byte) ([]*x509.Certificate, error) {
	cs, err := ParseCertificates(data)
	if err != nil {
		return nil, refErr(ref, fmt.Errorf("CA bundle: %w", err))
	}
	if len(cs) == 0 {
		return nil, refErr(ref, ErrNoCACertificates)
	}
	return cs, nil
}

// Revocations answers whether a certificate appears on a CRL. It is built
// once per snapshot and then only read, so it needs no lock.
type Revocations struct {
	// serials maps issuer raw subject + "/" + serial to the revocation time.
	serials map[string]time.Time
	// NextUpdate is the earliest NextUpdate of the loaded CRLs (zero if none).
	NextUpdate time.Time
}

// ParseCRL reads a CRL (PEM "X509 CRL" or DER) and checks that one of cas
// signed it, as Octavia does for client_crl_container_ref.
func ParseCRL(ref string, data []byte, cas []*x509.Certificate) (*Revocations, error) {
	der := data
	if b, _ := pem.Decode(data); b != nil {
		if b.Type != "X509 CRL" {
			return nil, refErr(ref, fmt.Errorf("%w: PEM block is %q, want X509 CRL", ErrUnreadable, b.Type))
		}
		der = b.Bytes
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, refErr(ref, fmt.Errorf("%w: CRL: %v", ErrUnreadable, err))
	}
	var issuer *x509.Certificate
	for _, ca := range cas {
		if bytes.Equal(ca.RawSubject, crl.RawIssuer) && crl.CheckSignatureFrom(ca) == nil {
			issuer = ca
			break
		}
	}
	if issuer == nil {
		return nil, refErr(ref, ErrCRLSignature)
	}
	r := &Revocations{serials: make(map[string]time.Time, len(crl.RevokedCertificateEntries)), NextUpdate: crl.NextUpdate}
	for _, e := range crl.RevokedCertificateEntries {
		r.serials[revocationKey(crl.RawIssuer, e.SerialNumber.Bytes())] = e.RevocationTime
	}
	return r, nil
}

// IsRevoked reports whether c is on the CRL. A nil Revocations revokes
// nothing.
func (r *Revocations) IsRevoked(c *x509.Certificate) bool {
	if r == nil {
		return false
	}
	_, ok := r.serials[revocationKey(c.RawIssuer, c.SerialNumber.Bytes())]
	return ok
}

func revocationKey(issuer, serial []byte) string {
	return string(issuer) + "/" + string(serial)
}
