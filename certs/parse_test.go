package certs_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/smallstep/pkcs7"
	"github.com/youmark/pkcs8"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
)

// chain builds root → int1 → int2 → leaf.
type chain struct {
	root, int1, int2 *pki.CA
	leaf             *x509.Certificate
	key              []byte // PEM
	keyObj           any
}

func newChain(t testing.TB, kt pki.KeyType) chain {
	t.Helper()
	root := testutil.CA(t, "root")
	int1, err := root.NewIntermediate("int1", pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	int2, err := int1.NewIntermediate("int2", pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	leaf, key := testutil.Leaf(t, int2, kt, "shop.example.com", "www.shop.example.com")
	return chain{root: root, int1: int1, int2: int2, leaf: leaf, key: testutil.KeyPEM(t, key), keyObj: key}
}

func TestParseFormats(t *testing.T) {
	c := newChain(t, pki.ECDSAP256)
	rsaChain := newChain(t, pki.RSA2048)
	certPEM := pki.CertPEM(c.leaf)
	inOrder := pki.CertPEM(c.int2.Cert, c.int1.Cert)
	outOfOrder := pki.CertPEM(c.int1.Cert, c.int2.Cert)

	p7, err := pkcs7.DegenerateCertificate(append(append([]byte{}, c.int1.Cert.Raw...), c.int2.Cert.Raw...))
	if err != nil {
		t.Fatal(err)
	}
	p7PEM := pem.EncodeToMemory(&pem.Block{Type: "PKCS7", Bytes: p7})

	encDER, err := pkcs8.MarshalPrivateKey(c.keyObj, []byte("s3cret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	encPKCS8 := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: encDER})
	p12, err := pkcs12.Modern.Encode(c.keyObj, c.leaf, []*x509.Certificate{c.int1.Cert, c.int2.Cert}, "")
	if err != nil {
		t.Fatal(err)
	}
	p12pw, err := pkcs12.Modern.Encode(c.keyObj, c.leaf, []*x509.Certificate{c.int2.Cert, c.int1.Cert}, "pw")
	if err != nil {
		t.Fatal(err)
	}
	p12legacy, err := pkcs12.Legacy.Encode(c.keyObj, c.leaf, []*x509.Certificate{c.int2.Cert}, "")
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name      string
		parse     func() (*certs.Bundle, error)
		chainLen  int
		wantNames []string
	}{
		{"combined PEM cert key chain", func() (*certs.Bundle, error) {
			return certs.Parse("r", cat(certPEM, c.key, inOrder), nil)
		}, 2, []string{"shop.example.com", "www.shop.example.com"}},
		{"combined PEM key first, chain out of order", func() (*certs.Bundle, error) {
			return certs.Parse("r", cat(c.key, outOfOrder, certPEM), nil)
		}, 2, nil},
		{"split parts", func() (*certs.Bundle, error) {
			return certs.ParseParts("r", certPEM, c.key, outOfOrder, nil)
		}, 2, nil},
		{"intermediates as PKCS#7 PEM", func() (*certs.Bundle, error) {
			return certs.ParseParts("r", certPEM, c.key, p7PEM, nil)
		}, 2, nil},
		{"intermediates as PKCS#7 DER", func() (*certs.Bundle, error) {
			return certs.ParseParts("r", certPEM, c.key, p7, nil)
		}, 2, nil},
		{"encrypted PKCS#8 key with passphrase", func() (*certs.Bundle, error) {
			return certs.Parse("r", cat(certPEM, encPKCS8, inOrder), []byte("s3cret"))
		}, 2, nil},
		{"legacy encrypted RSA key with passphrase", func() (*certs.Bundle, error) {
			return certs.ParseParts("r", pki.CertPEM(rsaChain.leaf), legacyEncrypt(t, rsaChain.key, "pw"), pki.CertPEM(rsaChain.int2.Cert, rsaChain.int1.Cert), []byte("pw"))
		}, 2, nil},
		{"PKCS#12 empty password", func() (*certs.Bundle, error) { return certs.Parse("r", p12, nil) }, 2, nil},
		{"PKCS#12 with password", func() (*certs.Bundle, error) { return certs.Parse("r", p12pw, []byte("pw")) }, 2, nil},
		{"PKCS#12 legacy RC2/3DES", func() (*certs.Bundle, error) { return certs.Parse("r", p12legacy, nil) }, 1, nil},
		{"root included is kept last", func() (*certs.Bundle, error) {
			return certs.Parse("r", cat(certPEM, c.key, pki.CertPEM(c.root.Cert, c.int1.Cert, c.int2.Cert)), nil)
		}, 3, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.parse()
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if !b.Leaf().Equal(c.leaf) && !b.Leaf().Equal(rsaChain.leaf) {
				t.Fatalf("leaf is %q, want the shop certificate", b.Leaf().Subject)
			}
			if len(b.Chain) != tc.chainLen {
				t.Fatalf("chain has %d certificates, want %d", len(b.Chain), tc.chainLen)
			}
			// The chain is in order: each certificate is issued by the next.
			prev := b.Leaf()
			for _, ic := range b.Chain {
				if err := prev.CheckSignatureFrom(ic); err != nil {
					t.Fatalf("chain out of order at %q: %v", ic.Subject, err)
				}
				prev = ic
			}
			if len(b.TLS.Certificate) != 1+tc.chainLen || !bytes.Equal(b.TLS.Certificate[0], b.Leaf().Raw) {
				t.Fatalf("tls.Certificate chain wrong: %d entries", len(b.TLS.Certificate))
			}
			if tc.wantNames != nil && strings.Join(b.Names, ",") != strings.Join(tc.wantNames, ",") {
				t.Fatalf("names %v, want %v", b.Names, tc.wantNames)
			}
		})
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// legacyEncrypt re-encodes a PKCS#8 PEM RSA key as a traditional
// "Proc-Type: 4,ENCRYPTED" PKCS#1 key, as openssl genrsa -aes256 wrote.
func legacyEncrypt(t testing.TB, keyPEM []byte, pass string) []byte {
	t.Helper()
	blk, _ := pem.Decode(keyPEM)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der := x509.MarshalPKCS1PrivateKey(k.(*rsa.PrivateKey))
	enc, err := x509.EncryptPEMBlock(rand.Reader, "RSA PRIVATE KEY", der, []byte(pass), x509.PEMCipherAES256) //nolint:staticcheck
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(enc)
}
