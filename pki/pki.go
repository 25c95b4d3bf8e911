// Package pki issues X.509 certificates: certificate authorities, server and
// client certificates, and CRLs. terminator uses it for its demo and its
// tests today and for the control API's two CAs.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// KeyType selects the algorithm of a new key.
type KeyType string

// Key types.
const (
	ECDSAP256 KeyType = "ecdsa-p256"
	ECDSAP384 KeyType = "ecdsa-p384"
	RSA2048   KeyType = "rsa-2048"
	RSA3072   KeyType = "rsa-3072"
	RSA4096   KeyType = "rsa-4096"
)

// NewKey generates a private key of type t (ECDSA P-256 when empty).
func NewKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case "", ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("pki: unknown key type %q", t)
}

// CA is a certificate authority: its certificate and signing key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Usage is what an issued certificate is for.
type Usage int

// Usages.
const (
	ServerAuth Usage = 1 << iota
	ClientAuth
)

// Request describes a certificate to issue.
type Request struct {
	CommonName   string
	Organization string
	DNSNames     []string
	IPAddresses  []net.IP
	Usage        Usage
	KeyType      KeyType
	// Validity defaults to a year, counted from now. NotBefore, if set,
	// fixes the start instead (and the end is NotBefore+Validity).
	NotBefore time.Time
	Validity  time.Duration
	// Key, if set, is certified instead of a new key (used to sign CSRs).
	Key crypto.PublicKey
}

// NewCA creates a self-signed CA valid for validity (10 years when 0).
func NewCA(cn string, t KeyType, validity time.Duration) (*CA, error) {
	key, err := NewKey(t)
	if err != nil {
		return nil, err
	}
	if validity == 0 {
		validity = 10 * 365 * 24 * time.Hour
	}
	tmpl := caTemplate(cn, validity)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: creating CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Issue signs a certificate for r. It returns the certificate and, unless
// r.Key was given, its new private key.
func (ca *CA) Issue(r Request) (*x509.Certificate, crypto.Signer, error) {
	var priv crypto.Signer
	pub := r.Key
	if pub == nil {
		var err error
		if priv, err = NewKey(r.KeyType); err != nil {
			return nil, nil, err
		}
		pub = priv.Public()
	}
	if r.CommonName == "" && len(r.DNSNames) == 0 && len(r.IPAddresses) == 0 {
		return nil, nil, errors.New("pki: a certificate needs a common name, a DNS name or an IP address")
	}
	validity := r.Validity
	if validity == 0 {
		validity = 365 * 24 * time.Hour
	}
	// Valid for validity from now; NotBefore is backdated for clock skew by
	// a minute at most, and by no more than a tenth of a short lifetime.
	notBefore, notAfter := r.NotBefore, r.NotBefore.Add(validity)
	if notBefore.IsZero() {
		now := time.Now()
		notBefore, notAfter = now.Add(-min(time.Minute, validity/10)), now.Add(validity)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: r.CommonName},
		DNSNames:              r.DNSNames,
		IPAddresses:           r.IPAddresses,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	if r.Organization != "" {
		tmpl.Subject.Organization = []string{r.Organization}
	}
	if _, isRSA := pub.(*rsa.PublicKey); isRSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if r.Usage&ServerAuth != 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if r.Usage&ClientAuth != 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issuing %q: %w", r.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, priv, nil
}

// NewIntermediate issues a subordinate CA.
func (ca *CA) NewIntermediate(cn string, t KeyType) (*CA, error) {
	key, err := NewKey(t)
	if err != nil {
		return nil, err
	}
	tmpl := caTemplate(cn, 5*365*24*time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: creating intermediate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// CRL signs a certificate revocation list naming the given certificates,
// valid for validity (a week when 0).
func (ca *CA) CRL(revoked []*x509.Certificate, validity time.Duration) ([]byte, error) {
	if validity == 0 {
		validity = 7 * 24 * time.Hour
	}
	now := time.Now()
	tmpl := &x509.RevocationList{
		Number:     randomSerial(),
		ThisUpdate: now.Add(-time.Minute),
		NextUpdate: now.Add(validity),
	}
	for _, c := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: c.SerialNumber, RevocationTime: now.Add(-time.Minute),
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: creating CRL: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}

// CertPEM encodes certificates as PEM, in order.
func CertPEM(cs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range cs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// KeyPEM encodes a private key as unencrypted PKCS#8 PEM.
func KeyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("pki: encoding key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// caTemplate is the template of a CA certificate valid from a minute ago.
func caTemplate(cn string, validity time.Duration) *x509.Certificate {
	now := time.Now()
	return &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("pki: crypto/rand failed: " + err.Error()) // crypto/rand never fails on Linux
	}
	return n.Add(n, big.NewInt(1))
}
