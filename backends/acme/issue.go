package acme

import (
	"bytes"
	"context"
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
	"slices"

	acmeapi "golang.org/x/crypto/acme"
)

// issue runs one order for names and returns the new key and chain as PEM.
func (m *Manager) issue(ctx context.Context, names []string) ([]byte, error) {
	cl, err := m.acct.client(ctx, m)
	if err != nil {
		return nil, err
	}
	data, err := m.order(ctx, cl, names)
	if isProblem(err, "accountDoesNotExist") {
		// The CA forgot the account (a test CA restarted, an account
		// deactivated): register the stored key again, once.
		m.acct.reset(cl)
		if cl, err = m.acct.client(ctx, m); err != nil {
			return nil, err
		}
		data, err = m.order(ctx, cl, names)
	}
	return data, err
}

func (m *Manager) order(ctx context.Context, cl *acmeapi.Client, names []string) ([]byte, error) {
	o, err := cl.AuthorizeOrder(ctx, acmeapi.DomainIDs(names...))
	if err != nil {
		return nil, fmt.Errorf("new order: %w", err)
	}
	for _, u := range o.AuthzURLs {
		if err := m.authorize(ctx, cl, u); err != nil {
			return nil, err
		}
	}
	if o, err = cl.WaitOrder(ctx, o.URI); err != nil {
		return nil, fmt.Errorf("order: %w", err)
	}
	key, err := newKey(m.opts.KeyType, false)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
	}, key)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	der, _, err := cl.CreateCertFromOrder(ctx, o, csr, true)
	if err != nil {
		return nil, fmt.Errorf("finalizing the order: %w", err)
	}
	if len(der) == 0 {
		return nil, errors.New("the CA returned no certificate")
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	_ = pem.Encode(&out, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	for _, c := range der {
		_ = pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: c})
	}
	return out.Bytes(), nil
}

// authorize proves control of one identifier with the first configured
// challenge type the CA offers.
func (m *Manager) authorize(ctx context.Context, cl *acmeapi.Client, url string) error {
	z, err := cl.GetAuthorization(ctx, url)
	if err != nil {
		return fmt.Errorf("authorization: %w", err)
	}
	if z.Status == acmeapi.StatusValid {
		return nil
	}
	var chal *acmeapi.Challenge
	for _, typ := range m.opts.Challenges {
		i := slices.IndexFunc(z.Challenges, func(c *acmeapi.Challenge) bool { return c.Type == typ })
		if i >= 0 {
			chal = z.Challenges[i]
			break
		}
	}
	if chal == nil {
		offered := make([]string, 0, len(z.Challenges))
		for _, c := range z.Challenges {
			offered = append(offered, c.Type)
		}
		return fmt.Errorf("%s: the CA offers %v, none of %v", z.Identifier.Value, offered, m.opts.Challenges)
	}
	undo, err := m.chal.present(ctx, cl, z.Identifier.Value, chal)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", z.Identifier.Value, chal.Type, err)
	}
	defer undo()
	if _, err := cl.Accept(ctx, chal); err != nil {
		return fmt.Errorf("%s: accepting %s: %w", z.Identifier.Value, chal.Type, err)
	}
	if _, err := cl.WaitAuthorization(ctx, z.URI); err != nil {
		return fmt.Errorf("%s: %s: %w", z.Identifier.Value, chal.Type, err)
	}
	return nil
}

// isProblem reports whether err is the CA's problem document of that type
// (RFC 8555 §6.7, urn:ietf:params:acme:error:TYPE).
func isProblem(err error, typ string) bool {
	var e *acmeapi.Error
	return errors.As(err, &e) && e.ProblemType == "urn:ietf:params:acme:error:"+typ
}

// newKey makes a certificate key of type t; check only validates t.
func newKey(t string, check bool) (crypto.Signer, error) {
	var bits int
	var curve elliptic.Curve
	switch t {
	case "", "ecdsa-p256":
		curve = elliptic.P256()
	case "ecdsa-p384":
		curve = elliptic.P384()
	case "rsa-2048":
		bits = 2048
	case "rsa-4096":
		bits = 4096
	default:
		return nil, fmt.Errorf("acme: unknown key type %q (ecdsa-p256, ecdsa-p384, rsa-2048, rsa-4096)", t)
	}
	if check {
		return nil, nil
	}
	if curve != nil {
		return ecdsa.GenerateKey(curve, rand.Reader)
	}
	return rsa.GenerateKey(rand.Reader, bits)
}
