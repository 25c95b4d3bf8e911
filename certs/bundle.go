package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Bundle is a validated certificate with its key and ordered chain. It is
// immutable: nothing may modify a Bundle or its TLS certificate once built.
//
// A bundle is compact: it keeps the leaf's DER and the few facts serving
// needs (names, validity, CA flag, fitness as a server certificate), not the
// parsed x509.Certificate, which is about 2.5 KiB more per certificate and
// dense with pointers the garbage collector must trace (a listener may hold
// 100,000 bundles). Leaf parses the certificate again when the rest is
// needed.
type Bundle struct {
	// Ref is the reference the bundle was loaded from.
	Ref string
	// Chain holds the intermediates in order, leaf's issuer first. A
	// self-signed root given with the bundle is kept at the end.
	Chain []*x509.Certificate
	// TLS is ready for crypto/tls: the DER chain (leaf first) and the key.
	// Its Leaf is nil; a copy that needs it (for SupportsCertificate) sets
	// it from Leaf.
	TLS *tls.Certificate
	// Names are the host names served: lower-cased DNS SANs, or the CN when
	// the certificate has no DNS SAN (as haproxy does).
	Names []string
	// NotBefore and NotAfter bound the leaf's validity.
	NotBefore, NotAfter time.Time
	// IsCA is set for a CA certificate (basicConstraints CA:TRUE).
	IsCA bool
	// serverUse is CheckServerUse's answer, found while the leaf was parsed.
	serverUse error
}

// Assemble validates a certificate, key and intermediates and returns them
// as a Bundle. The intermediates may come in any order; they are sorted from
// the leaf's issuer upward. Any intermediate that does not link into the
// chain is an error, as is a key that does not match or a certificate
// without a host name.
func Assemble(ref string, leaf *x509.Certificate, key crypto.PrivateKey, intermediates []*x509.Certificate) (*Bundle, error) {
	if leaf == nil {
		return nil, refErr(ref, ErrNoCertificate)
	}
	if key == nil {
		return nil, refErr(ref, ErrNoKey)
	}
	if err := keyMatches(leaf, key); err != nil {
		return nil, refErr(ref, err)
	}
	chain, err := orderChain(leaf, intermediates)
	if err != nil {
		return nil, refErr(ref, err)
	}
	names := hostNames(leaf)
	if len(names) == 0 {
		return nil, refErr(ref, ErrNoHostName)
	}
	der := make([][]byte, 0, 1+len(chain))
	der = append(der, leaf.Raw)
	for _, c := range chain {
		der = append(der, c.Raw)
	}
	return &Bundle{
		Ref:       ref,
		Chain:     chain,
		TLS:       &tls.Certificate{Certificate: der, PrivateKey: key},
		Names:     names,
		NotBefore: leaf.NotBefore,
		NotAfter:  leaf.NotAfter,
		IsCA:      leaf.IsCA,
		serverUse: checkServerUse(ref, leaf),
	}, nil
}

// Leaf parses the leaf certificate from its DER, afresh on each call (tens
// of microseconds): callers keep the result for as long as they need it
// and never call Leaf per handshake or per request.
func (b *Bundle) Leaf() *x509.Certificate {
	c, err := x509.ParseCertificate(b.TLS.Certificate[0])
	if err != nil { // Assemble parsed these very bytes
		panic(fmt.Sprintf("certs: bundle %s: leaf no longer parses: %v", b.Ref, err))
	}
	return c
}

// Fingerprint is the SHA-256 of the leaf certificate, hex-encoded.
func (b *Bundle) Fingerprint() string {
	sum := sha256.Sum256(b.TLS.Certificate[0])
	return hex.EncodeToString(sum[:])
}

// KeyType describes the key, for example "ECDSA P-256" or "RSA 2048". The
// key's public half is the leaf's (Assemble checked).
func (b *Bundle) KeyType() string {
	pub := b.TLS.PrivateKey.(crypto.Signer).Public()
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// CheckValidity returns an error when the certificate is expired or not yet
// valid at now. Such a bundle is still served (an operator's choice to fix),
// but callers must say so loudly.
func (b *Bundle) CheckValidity(now time.Time) error {
	switch {
	case now.After(b.NotAfter):
		return fmt.Errorf("certificate ref %s: certificate expired at %s", b.Ref, b.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(b.NotBefore):
		return fmt.Errorf("certificate ref %s: certificate is not valid before %s", b.Ref, b.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// CheckServerUse reports a certificate that TLS clients refuse as a server
// certificate ("unsuitable certificate purpose"): an extended key usage
// without serverAuth, or a key usage without digitalSignature,
// keyEncipherment or keyAgreement, as CA certificates have (OpenSSL's
// X509_PURPOSE_SSL_SERVER check; Go's client checks the extended usage).
func (b *Bundle) CheckServerUse() error { return b.serverUse }

func checkServerUse(ref string, c *x509.Certificate) error {
	if len(c.ExtKeyUsage) > 0 || len(c.UnknownExtKeyUsage) > 0 {
		if !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) && !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny) {
			return fmt.Errorf("certificate ref %s: its extended key usage lacks serverAuth; TLS clients refuse it as a server certificate (unsuitable certificate purpose)", ref)
		}
	}
	if c.KeyUsage != 0 && c.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment|x509.KeyUsageKeyAgreement) == 0 {
		what := "its key usage"
		if c.IsCA {
			what = "it is a CA certificate whose key usage"
		}
		return fmt.Errorf("certificate ref %s: %s allows no TLS server use (no digitalSignature or keyEncipherment); clients refuse it (unsuitable certificate purpose)", ref, what)
	}
	return nil
}

func keyMatches(leaf *x509.Certificate, key crypto.PrivateKey) error {
	signer, ok := key.(crypto.Signer)
	if !ok {
		return fmt.Errorf("unsupported private key type %T", key)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return ErrKeyMismatch
	}
	return nil
}

// orderChain returns the intermediates sorted leaf-issuer first. Duplicates
// and a copy of the leaf are dropped.
func orderChain(leaf *x509.Certificate, in []*x509.Certificate) ([]*x509.Certificate, error) {
	rest := make([]*x509.Certificate, 0, len(in))
	for _, c := range in {
		if c.Equal(leaf) || containsCert(rest, c) {
			continue
		}
		rest = append(rest, c)
	}
	var chain []*x509.Certificate
	cur := leaf
	for len(rest) > 0 {
		next := -1
		for i, c := range rest {
			if bytes.Equal(cur.RawIssuer, c.RawSubject) && cur.CheckSignatureFrom(c) == nil {
				next = i
				break
			}
		}
		if next < 0 {
			break
		}
		if isSelfSigned(cur) {
			break
		}
		cur = rest[next]
		chain = append(chain, cur)
		rest = append(rest[:next], rest[next+1:]...)
	}
	if len(rest) > 0 {
		subjects := make([]string, len(rest))
		for i, c := range rest {
			subjects[i] = fmt.Sprintf("%q", c.Subject.String())
		}
		return nil, fmt.Errorf("%w: %s not linked from %q", ErrChainBroken, strings.Join(subjects, ", "), cur.Subject.String())
	}
	return chain, nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range list {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

func hostNames(c *x509.Certificate) []string {
	var names []string
	for _, n := range c.DNSNames {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = append(names, strings.ToLower(c.Subject.CommonName))
	}
	return names
}
