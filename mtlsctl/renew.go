package mtlsctl

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/pki"
)

// DefaultRenewValidity is the lifetime of self-renewed control
// certificates: the seed's short-lived, twice-a-day certificates.
const DefaultRenewValidity = 12 * time.Hour

// renewDelay is the time until two thirds of the current certificate's
// lifetime, with ±5% jitter; never negative. Without a signer it is an hour
// (the timer is then only a tick that does nothing).
func (s *Server) renewDelay() time.Duration {
	if s.opts.Signer == nil {
		return time.Hour
	}
	b := s.cert.Load()
	life := b.NotAfter.Sub(b.NotBefore)
	at := b.NotBefore.Add(life * 2 / 3)
	jitter := time.Duration((rand.Float64() - 0.5) * 0.1 * float64(life))
	return max(time.Until(at.Add(jitter)), 0)
}

func (s *Server) renewValidity() time.Duration {
	if r := s.opts.Control.Renew; r != nil && r.Validity != "" {
		if d, err := time.ParseDuration(r.Validity); err == nil {
			return d
		}
	}
	return DefaultRenewValidity
}

// renew makes a new key, has the signer sign its CSR, and installs the
// result. The private key never leaves the process except into the state
// directory (0600), so a restart keeps serving it.
func (s *Server) renew(ctx context.Context) error {
	cn := s.cert.Load().Leaf().Subject.CommonName
	if r := s.opts.Control.Renew; r != nil && r.CommonName != "" {
		cn = r.CommonName
	}
	key, err := pki.NewKey(pki.ECDSAP256)
	if err != nil {
		return err
	}
	csr, err := pki.NewCSR(cn, key)
	if err != nil {
		return err
	}
	certPEM, err := s.opts.Signer.SignCSR(ctx, csr, s.renewValidity())
	if err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	keyPEM, err := pki.KeyPEM(key)
	if err != nil {
		return err
	}
	b, err := s.install(append(certPEM, keyPEM...), nil)
	if err != nil {
		return err
	}
	s.log.Info("control API: server certificate renewed", "cn", cn, "not_after", b.NotAfter)
	return nil
}

// install validates a server certificate bundle (PEM or PKCS#12), stores
// it in the state directory and serves it to new handshakes. Connections
// already open are not affected.
func (s *Server) install(data, passphrase []byte) (*certs.Bundle, error) {
	path := s.ownCertRef()
	b, err := certs.Parse("file://"+path, data, passphrase)
	if err != nil {
		return nil, err
	}
	if eku := b.Leaf().ExtKeyUsage; len(eku) > 0 && !containsUsage(eku, x509.ExtKeyUsageServerAuth) {
		return nil, errors.New("certificate is not for server authentication (extended key usage lacks serverAuth)")
	}
	if err := b.CheckValidity(time.Now()); err != nil {
		return nil, err
	}
	normalized, err := bundlePEM(b)
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(path, normalized, 0o600); err != nil {
		return nil, fmt.Errorf("storing the control certificate: %w", err)
	}
	s.setCert(b)
	return b, nil
}

// bundlePEM renders a bundle as one PEM: leaf, chain, unencrypted key.
func bundlePEM(b *certs.Bundle) ([]byte, error) {
	out := pki.CertPEM(append([]*x509.Certificate{b.Leaf()}, b.Chain...)...)
	signer, ok := b.TLS.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("unsupported key")
	}
	kp, err := pki.KeyPEM(signer)
	if err != nil {
		return nil, err
	}
	return append(out, kp...), nil
}

func containsUsage(list []x509.ExtKeyUsage, u x509.ExtKeyUsage) bool {
	for _, x := range list {
		if x == u || x == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
