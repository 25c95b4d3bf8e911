package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/youmark/pkcs8"
)

// SignCSR issues a certificate for a PEM or DER certificate request, for
// the given usage and validity. The request's signature is checked; its
// subject CN, DNS names and IP addresses are kept, nothing else.
func (ca *CA) SignCSR(csrData []byte, usage Usage, validity time.Duration) (*x509.Certificate, error) {
	der := csrData
	if b, _ := pem.Decode(csrData); b != nil {
		if b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST" {
			return nil, fmt.Errorf("pki: PEM block is %q, want CERTIFICATE REQUEST", b.Type)
		}
		der = b.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("pki: reading certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("pki: certificate request signature: %w", err)
	}
	c, _, err := ca.Issue(Request{
		CommonName: csr.Subject.CommonName, DNSNames: csr.DNSNames, IPAddresses: csr.IPAddresses,
		Usage: usage, Validity: validity, Key: csr.PublicKey,
	})
	return c, err
}

// NewCSR creates a certificate request for cn (also its DNS name) signed by
// key.
func NewCSR(cn string, key crypto.Signer) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn}}, key)
	if err != nil {
		return nil, fmt.Errorf("pki: creating CSR: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// EncryptedKeyPEM encodes k as PKCS#8 encrypted with passphrase (PBES2,
// AES-256-CBC, PBKDF2-SHA256), as openssl genpkey -aes256 writes.
func EncryptedKeyPEM(k crypto.Signer, passphrase []byte) ([]byte, error) {
	der, err := pkcs8.MarshalPrivateKey(k, passphrase, &pkcs8.Opts{
		Cipher:  pkcs8.AES256CBC,
		KDFOpts: pkcs8.PBKDF2Opts{SaltSize: 16, IterationCount: 100000, HMACHash: crypto.SHA256},
	})
	if err != nil {
		return nil, fmt.Errorf("pki: encrypting key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}), nil
}

// LoadCA reads a CA certificate and key from PEM files; passphrase decrypts
// an encrypted key (nil for none).
func LoadCA(certFile, keyFile string, passphrase []byte) (*CA, error) {
	cp, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	b, _ := pem.Decode(cp)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("pki: %s holds no PEM certificate", certFile)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", certFile, err)
	}
	kp, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	kb, _ := pem.Decode(kp)
	if kb == nil {
		return nil, fmt.Errorf("pki: %s holds no PEM key", keyFile)
	}
	var key any
	switch {
	case kb.Type == "ENCRYPTED PRIVATE KEY" && passphrase == nil:
		return nil, fmt.Errorf("pki: %s is encrypted; give its passphrase", keyFile)
	case kb.Type == "ENCRYPTED PRIVATE KEY":
		key, err = pkcs8.ParsePKCS8PrivateKey(kb.Bytes, passphrase)
	default:
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
		if err != nil {
			if k, e2 := x509.ParseECPrivateKey(kb.Bytes); e2 == nil {
				key, err = k, nil
			} else if k, e3 := x509.ParsePKCS1PrivateKey(kb.Bytes); e3 == nil {
				key, err = k, nil
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("pki: reading %s: %w", keyFile, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, errors.New("pki: CA key cannot sign")
	}
	if pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("pki: %s does not match %s", keyFile, certFile)
	}
	return &CA{Cert: cert, Key: signer}, nil
}

// CRLSerials signs a CRL revoking the given serial numbers.
func (ca *CA) CRLSerials(serials []*big.Int, validity time.Duration) ([]byte, error) {
	revoked := make([]*x509.Certificate, len(serials))
	for i, s := range serials {
		revoked[i] = &x509.Certificate{SerialNumber: s}
	}
	return ca.CRL(revoked, validity)
}
