package sni

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/terminator-proxy/terminator/certs"
)

// ErrClientRevoked marks a client certificate rejected by the CRL; it
// comes wrapped together with ErrClientCertificate.
var ErrClientRevoked = errors.New("client certificate revoked")

// ClientVerifier checks client certificates against a client CA and CRL
// with the clientAuth usage. It is immutable; the data plane builds one per
// listener and snapshot, the control API one per trust generation.
type ClientVerifier struct {
	roots     *x509.CertPool
	revoked   *certs.Revocations
	mandatory bool
	// Now returns the verification time; nil means time.Now.
	Now func() time.Time
	// Extra, if set, is a further check of a verified leaf (an allow-list).
	Extra func(leaf *x509.Certificate) error
}

// NewClientVerifier returns a verifier for the given CAs and CRL (nil: no
// CRL). mandatory refuses clients that present no certificate.
func NewClientVerifier(cas []*x509.Certificate, revoked *certs.Revocations, mandatory bool) *ClientVerifier {
	v := &ClientVerifier{roots: x509.NewCertPool(), revoked: revoked, mandatory: mandatory}
	for _, ca := range cas {
		v.roots.AddCert(ca)
	}
	return v
}

// Configure sets cfg's client authentication to v. A full handshake's
// chain is verified by crypto/tls itself, so that clients get the alert
// OpenSSL sends (unknown_ca, certificate_expired); VerifyConnection then
// checks the CRL, and on resumed sessions, where crypto/tls verifies
// nothing, the whole chain against the current CA and CRL again.
func (v *ClientVerifier) Configure(cfg *tls.Config) {
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	if v.mandatory {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	cfg.ClientCAs = v.roots
	if v.Now != nil {
		cfg.Time = v.Now
	}
	cfg.VerifyConnection = v.Verify
}

// Verify checks a connection's client certificate; errors wrap
// ErrClientCertificate.
func (v *ClientVerifier) Verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		if v.mandatory {
			return fmt.Errorf("%w: no certificate presented", ErrClientCertificate)
		}
		return nil
	}
	chains := cs.VerifiedChains
	if cs.DidResume || len(chains) == 0 {
		var err error
		if chains, err = v.VerifyChain(cs.PeerCertificates); err != nil {
			return err
		}
	}
	return v.checkChain(chains[0])
}

// VerifyChain verifies a presented chain (leaf first) from scratch against
// the CA, the clientAuth usage, the CRL and Extra: for resumed sessions,
// and for re-checking an open connection after the CRL changed.
func (v *ClientVerifier) VerifyChain(presented []*x509.Certificate) ([][]*x509.Certificate, error) {
	if len(presented) == 0 {
		return nil, fmt.Errorf("%w: no certificate presented", ErrClientCertificate)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	opts := x509.VerifyOptions{
		Roots:         v.roots,
		Intermediates: x509.NewCertPool(),
		CurrentTime:   now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, c := range presented[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := presented[0].Verify(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrClientCertificate, err)
	}
	return chains, v.checkChain(chains[0])
}

func (v *ClientVerifier) checkChain(chain []*x509.Certificate) error {
	for _, c := range chain {
		if v.revoked.IsRevoked(c) {
			return fmt.Errorf("%w: %w: %q (serial %x)", ErrClientCertificate, ErrClientRevoked, c.Subject.String(), c.SerialNumber)
		}
	}
	if v.Extra != nil {
		if err := v.Extra(chain[0]); err != nil {
			return fmt.Errorf("%w: %w", ErrClientCertificate, err)
		}
	}
	return nil
}

// ClientCertReason names why a handshake refused a client certificate:
// "revoked", "expired", "unknown_ca", "missing" or "bad_certificate"; ""
// when err is not about the client certificate. The set is fixed, for
// metric labels.
func ClientCertReason(err error) string {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var verr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, ErrClientRevoked):
		return "revoked"
	case errors.As(err, &unknown):
		return "unknown_ca"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "expired"
	case errors.Is(err, ErrClientCertificate) && errors.As(err, &invalid):
		return "bad_certificate"
	case errors.Is(err, ErrClientCertificate) && errorHas(err, "no certificate presented"),
		errorHas(err, "client didn't provide a certificate"): // crypto/tls has no typed error
		return "missing"
	case errors.Is(err, ErrClientCertificate), errors.As(err, &verr):
		return "bad_certificate"
	}
	return ""
}

func errorHas(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }

// TLS alert numbers (RFC 8446 §6).
const (
	alertBadCertificate     = 42
	alertCertificateRevoked = 44
)

// AlertHold sits in a connection wrapper under a server *tls.Conn and
// holds back the fatal bad_certificate alert that crypto/tls writes when a
// TLS 1.2 handshake refuses a client certificate, so that Release can send
// the alert OpenSSL would have: certificate_revoked for a revoked
// certificate (crypto/tls sends bad_certificate for every VerifyConnection
// error). TLS 1.3 alerts there are encrypted and pass through unchanged.
// Its methods run on the handshaking goroutine only.
type AlertHold struct {
	alert []byte
	done  bool
}

// Intercept reports whether p was held back; call it from Write.
func (h *AlertHold) Intercept(p []byte) bool {
	if h.done || !isBadCertificateAlert(p) {
		return false
	}
	h.alert = append(h.alert[:0], p...)
	return true
}

// Release ends the hold once the handshake is over (err is its result):
// a held alert is written to w, patched for err.
func (h *AlertHold) Release(w io.Writer, err error) {
	h.done = true
	if h.alert == nil {
		return
	}
	if ClientCertReason(err) == "revoked" {
		h.alert[6] = alertCertificateRevoked
	}
	_, _ = w.Write(h.alert)
	h.alert = nil
}

// isBadCertificateAlert reports whether p is exactly one plaintext fatal
// bad_certificate alert record.
func isBadCertificateAlert(p []byte) bool {
	return len(p) == 7 && p[0] == 21 && p[1] == 3 && p[3] == 0 && p[4] == 2 && p[5] == 2 && p[6] == alertBadCertificate
}
