package certs

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/smallstep/pkcs7"
	"github.com/youmark/pkcs8"
	"software.sslmate.com/src/go-pkcs12"
)

// Parse reads a bundle in whichever format data holds: PEM (certificate,
// key and chain in any order, intermediates possibly as PKCS#7) or PKCS#12
// (DER). passphrase decrypts an encrypted key or a password-protected
// PKCS#12; nil means none.
func Parse(ref string, data, passphrase []byte) (*Bundle, error) {
	if looksPEM(data) {
		return ParsePEM(ref, data, passphrase)
	}
	return ParsePKCS12(ref, data, passphrase)
}

// ParsePEM reads certificates, one private key and PKCS#7 blocks from PEM
// data. The first certificate whose public key matches the key is the leaf;
// the others are intermediates.
func ParsePEM(ref string, data, passphrase []byte) (*Bundle, error) {
	return ParseParts(ref, data, nil, nil, passphrase)
}

// ParseParts reads a bundle given as separate parts, as Octavia's
// certificate containers and local cert manager store them: certificate,
// private key, intermediates (PEM or PKCS#7, PEM or DER). Any part may also
// carry the others (a combined PEM in cert, say); empty parts are skipped.
func ParseParts(ref string, cert, key, intermediates, passphrase []byte) (*Bundle, error) {
	var certsFound []*x509.Certificate
	var priv crypto.PrivateKey
	for _, part := range [][]byte{cert, key, intermediates} {
		if len(bytes.TrimSpace(part)) == 0 {
			continue
		}
		cs, k, err := readPart(part, passphrase)
		if err != nil {
			return nil, refErr(ref, err)
		}
		certsFound = append(certsFound, cs...)
		if k != nil {
			if priv != nil {
				return nil, refErr(ref, errors.New("more than one private key found"))
			}
			priv = k
		}
	}
	if len(certsFound) == 0 {
		return nil, refErr(ref, ErrNoCertificate)
	}
	if priv == nil {
		return nil, refErr(ref, ErrNoKey)
	}
	leaf, rest := pickLeaf(certsFound, priv)
	return Assemble(ref, leaf, priv, rest)
}

// ParsePKCS12 decodes a PKCS#12 bundle. An empty password is tried when
// passphrase is nil; a bundle that needs another reports ErrNeedsPassphrase
// or ErrWrongPassphrase.
func ParsePKCS12(ref string, data, passphrase []byte) (*Bundle, error) {
	if err := checkPKCS12KDF(data); err != nil {
		return nil, refErr(ref, err)
	}
	key, leaf, cas, err := decodePKCS12(data, string(passphrase))
	if err != nil {
		if errors.Is(err, ErrKDFTooCostly) {
			return nil, refErr(ref, err)
		}
		switch {
		case errors.Is(err, pkcs12.ErrIncorrectPassword) && passphrase == nil:
			return nil, refErr(ref, fmt.Errorf("PKCS#12 bundle is protected by a passphrase: %w", ErrNeedsPassphrase))
		case errors.Is(err, pkcs12.ErrIncorrectPassword):
			return nil, refErr(ref, fmt.Errorf("PKCS#12 bundle: %w", ErrWrongPassphrase))
		}
		return nil, refErr(ref, fmt.Errorf("%w: not PEM, and not a readable PKCS#12 bundle: %v", ErrUnreadable, err))
	}
	return Assemble(ref, leaf, key, cas)
}

// ParseCertificates reads every certificate in PEM data (CERTIFICATE and
// PKCS7 blocks) or in one DER certificate or PKCS#7 structure.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	cs, key, err := readPart(data, nil)
	if err != nil {
		return nil, err
	}
	if key != nil {
		return nil, errors.New("unexpected private key among certificates")
	}
	return cs, nil
}

func readPart(data, passphrase []byte) ([]*x509.Certificate, crypto.PrivateKey, error) {
	if !looksPEM(data) {
		return readDER(data, passphrase)
	}
	var (
		out []*x509.Certificate
		key crypto.PrivateKey
	)
	rest := data
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE", "TRUSTED CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: PEM block %d (CERTIFICATE): %v", ErrUnreadable, n, err)
			}
			out = append(out, c)
		case "PKCS7":
			cs, err := parsePKCS7(block.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("PEM block %d (PKCS7): %w", n, err)
			}
			out = append(out, cs...)
		default:
			if !isKeyBlock(block.Type) {
				continue // parameters, CSRs and other blocks are not ours
			}
			if key != nil {
				return nil, nil, errors.New("more than one private key found")
			}
			k, err := parseKeyBlock(block, passphrase)
			if err != nil {
				return nil, nil, fmt.Errorf("PEM block %d (%s): %w", n, block.Type, err)
			}
			key = k
		}
	}
	if out == nil && key == nil {
		return nil, nil, fmt.Errorf("%w: no PEM certificate or key found", ErrUnreadable)
	}
	return out, key, nil
}

// readDER accepts one DER certificate, PKCS#7 structure or private key.
func readDER(data, passphrase []byte) ([]*x509.Certificate, crypto.PrivateKey, error) {
	if c, err := x509.ParseCertificate(data); err == nil {
		return []*x509.Certificate{c}, nil, nil
	}
	if cs, err := parsePKCS7(data); err == nil {
		return cs, nil, nil
	}
	if k, err := parseKeyDER(data); err == nil {
		return nil, k, nil
	}
	if passphrase != nil && checkKeyKDF(data) == nil {
		if k, err := pkcs8.ParsePKCS8PrivateKey(data, passphrase); err == nil {
			return nil, k, nil
		}
	}
	return nil, nil, fmt.Errorf("%w: neither PEM nor a DER certificate, PKCS#7 or key", ErrUnreadable)
}

func parsePKCS7(der []byte) ([]*x509.Certificate, error) {
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("%w: PKCS#7: %v", ErrUnreadable, err)
	}
	if len(p7.Certificates) == 0 {
		return nil, fmt.Errorf("%w: PKCS#7 holds no certificate", ErrUnreadable)
	}
	return p7.Certificates, nil
}

func isKeyBlock(t string) bool {
	switch t {
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
		return true
	}
	return false
}

func parseKeyBlock(block *pem.Block, passphrase []byte) (crypto.PrivateKey, error) {
	if block.Type == "ENCRYPTED PRIVATE KEY" {
		if passphrase == nil {
			return nil, ErrNeedsPassphrase
		}
		if err := checkKeyKDF(block.Bytes); err != nil {
			return nil, err
		}
		k, err := pkcs8.ParsePKCS8PrivateKey(block.Bytes, passphrase)
		if err != nil {
			return nil, fmt.Errorf("%w (or unreadable encrypted key: %v)", ErrWrongPassphrase, err)
		}
		return k, nil
	}
	der := block.Bytes
	//nolint:staticcheck // legacy "Proc-Type: 4,ENCRYPTED" keys are what openssl genrsa -aes256 wrote for years.
	if x509.IsEncryptedPEMBlock(block) {
		if passphrase == nil {
			return nil, ErrNeedsPassphrase
		}
		var err error
		//nolint:staticcheck // see above
		der, err = x509.DecryptPEMBlock(block, passphrase)
		if err != nil {
			return nil, ErrWrongPassphrase
		}
	}
	k, err := parseKeyDER(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreadable, err)
	}
	return k, nil
}

func parseKeyDER(der []byte) (crypto.PrivateKey, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("not a PKCS#8, PKCS#1 or SEC 1 private key")
}

// pickLeaf returns the certificate whose public key matches key (the first
// one when none does, so that Assemble reports the mismatch) and the rest.
func pickLeaf(cs []*x509.Certificate, key crypto.PrivateKey) (*x509.Certificate, []*x509.Certificate) {
	idx := 0
	if s, ok := key.(crypto.Signer); ok {
		if pub, ok := s.Public().(interface{ Equal(crypto.PublicKey) bool }); ok {
			for i, c := range cs {
				if pub.Equal(c.PublicKey) {
					idx = i
					break
				}
			}
		}
	}
	rest := make([]*x509.Certificate, 0, len(cs)-1)
	rest = append(rest, cs[:idx]...)
	rest = append(rest, cs[idx+1:]...)
	return cs[idx], rest
}

func looksPEM(data []byte) bool { return bytes.Contains(data, []byte("-----BEGIN ")) }
