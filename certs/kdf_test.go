package certs_test

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/youmark/pkcs8"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/pki"
)

// marker is the iteration count bundles are made with before rewriteInts
// turns it into the value under test (it appears nowhere else in them).
const marker = 2357

// TestKDFCostsAreBounded: a bundle chooses its own key-derivation cost, so
// a hostile one must be refused quickly with an error naming the ref, not
// derive for minutes or exhaust memory. Before the bounds, each of these
// ran for minutes (iterations) or died out of memory (scrypt).
func TestKDFCostsAreBounded(t *testing.T) {
	c := newChain(t, pki.ECDSAP256)
	chainCerts := []*x509.Certificate{c.int2.Cert, c.int1.Cert}
	p12 := func(enc *pkcs12.Encoder, pw string) []byte {
		der, err := enc.WithIterations(marker).Encode(c.keyObj, c.leaf, chainCerts, pw)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	encKey := func(opts pkcs8.KDFOpts) []byte {
		der, err := pkcs8.MarshalPrivateKey(c.keyObj, []byte("pw"), &pkcs8.Opts{Cipher: pkcs8.AES256CBC, KDFOpts: opts})
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	pemWith := func(keyDER []byte) []byte {
		return cat(pki.CertPEM(c.leaf), pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: keyDER}))
	}
	const huge = 1<<31 - 1
	cases := []struct {
		name  string
		parse func() (*certs.Bundle, error)
		want  string
	}{
		{"PKCS#12 MAC iterations", func() (*certs.Bundle, error) {
			return certs.ParsePKCS12("ref-mac", rewriteInts(t, p12(pkcs12.Modern, "pw"), marker, huge), []byte("pw"))
		}, "PKCS#12 MAC: key derivation asks for 2147483647 iterations"},
		{"PKCS#12 PBES2 iterations, no MAC", func() (*certs.Bundle, error) {
			return certs.ParsePKCS12("ref-pbes2", dropMAC(t, rewriteInts(t, p12(pkcs12.Modern, ""), marker, huge)), nil)
		}, "PKCS#12 safe 1: key derivation asks for 2147483647 iterations"},
		{"PKCS#12 3DES PBE iterations, no MAC", func() (*certs.Bundle, error) {
			return certs.ParsePKCS12("ref-3des", dropMAC(t, rewriteInts(t, p12(pkcs12.LegacyDES, ""), marker, huge)), nil)
		}, "key derivation asks for 2147483647 iterations"},
		{"PKCS#8 PBKDF2 iterations", func() (*certs.Bundle, error) {
			der := encKey(pkcs8.PBKDF2Opts{SaltSize: 16, IterationCount: marker, HMACHash: crypto.SHA256})
			return certs.ParsePEM("ref-pbkdf2", pemWith(rewriteInts(t, der, marker, huge)), []byte("pw"))
		}, "encrypted private key: key derivation asks for 2147483647 iterations"},
		{"PKCS#8 scrypt N=2^26", func() (*certs.Bundle, error) {
			der := encKey(pkcs8.ScryptOpts{SaltSize: 16, CostParameter: 16384, BlockSize: 8, ParallelizationParameter: 1})
			return certs.ParsePEM("ref-scrypt", pemWith(rewriteInts(t, der, 16384, 1<<26)), []byte("pw"))
		}, "scrypt N=67108864 r=8 needs 68719476736 bytes"},
		{"PKCS#8 scrypt p=1000", func() (*certs.Bundle, error) {
			der := encKey(pkcs8.ScryptOpts{SaltSize: 16, CostParameter: 1024, BlockSize: 7, ParallelizationParameter: 1})
			return certs.ParsePEM("ref-scrypt-p", pemWith(rewriteInts(t, der, 1, 1000)), []byte("pw"))
		}, "scrypt p=1000"},
		{"DER PKCS#8 in split files", func() (*certs.Bundle, error) {
			der := encKey(pkcs8.PBKDF2Opts{SaltSize: 16, IterationCount: marker, HMACHash: crypto.SHA256})
			return certs.ParseParts("ref-der", pki.CertPEM(c.leaf), rewriteInts(t, der, marker, huge), nil, []byte("pw"))
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := within(t, 5*time.Second, tc.parse)
			if err == nil {
				t.Fatalf("parsed %v", b.Names)
			}
			if tc.want == "" {
				return // a DER key that cannot be read is reported as no key
			}
			if !errors.Is(err, certs.ErrKDFTooCostly) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "certificate ref ref-") {
				t.Fatalf("error %q; want ErrKDFTooCostly naming the ref and %q", err, tc.want)
			}
		})
	}

	// What real tools write still parses.
	for name, parse := range map[string]func() (*certs.Bundle, error){
		"PKCS#12 at 2048": func() (*certs.Bundle, error) {
			return certs.ParsePKCS12("ok", p12(pkcs12.Modern, "pw"), []byte("pw"))
		},
		"scrypt N=16384 r=8 (openssl pkcs8 -scrypt)": func() (*certs.Bundle, error) {
			return certs.ParsePEM("ok", pemWith(encKey(pkcs8.ScryptOpts{SaltSize: 16, CostParameter: 16384, BlockSize: 8, ParallelizationParameter: 1})), []byte("pw"))
		},
	} {
		if _, err := parse(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestPKCS12HiddenKeyBagIsTimeBounded: a shrouded key bag inside an
// encrypted safe shows its iteration count only after the safe is
// decrypted. Its decode is cut off at the time bound, and while it still
// runs other PKCS#12 bundles are refused instead of piling up more work.
func TestPKCS12HiddenKeyBagIsTimeBounded(t *testing.T) {
	defer certs.SetPKCS12DecodeTime(200 * time.Millisecond)()
	hidden := hiddenKeyBagPFX(t, 10_000_000)
	start := time.Now()
	_, err := certs.ParsePKCS12("ref-hidden", hidden, nil)
	if !errors.Is(err, certs.ErrKDFTooCostly) || !strings.Contains(err.Error(), "ref-hidden") {
		t.Fatalf("hidden key bag: %v; want ErrKDFTooCostly naming the ref", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the caller waited %s", d)
	}
	c := newChain(t, pki.ECDSAP256)
	good, err := pkcs12.Modern.Encode(c.keyObj, c.leaf, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := certs.ParsePKCS12("ref-good", good, nil); !errors.Is(err, certs.ErrKDFTooCostly) || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("while an overrun runs: %v; want a refusal", err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for certs.PKCS12Overruns() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the overrunning decode never ended")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := certs.ParsePKCS12("ref-good", good, nil); err != nil {
		t.Fatalf("after the overrun ended: %v", err)
	}
}

func within(t *testing.T, d time.Duration, f func() (*certs.Bundle, error)) (*certs.Bundle, error) {
	t.Helper()
	type result struct {
		b   *certs.Bundle
		err error
	}
	ch := make(chan result, 1)
	go func() { b, err := f(); ch <- result{b, err} }()
	select {
	case r := <-ch:
		return r.b, r.err
	case <-time.After(d):
		t.Fatalf("parse still running after %s", d)
		return nil, nil
	}
}

// rewriteInts replaces every DER INTEGER equal to from with to, inside
// nested structures and inside OCTET STRINGs that hold DER, fixing every
// length on the way.
func rewriteInts(t *testing.T, der []byte, from, to int64) []byte {
	t.Helper()
	out, n := rewriteValue(der, from, to)
	if n == 0 {
		t.Fatalf("no INTEGER %d found", from)
	}
	return out
}

func rewriteValue(der []byte, from, to int64) ([]byte, int) {
	var v asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &v); err != nil || len(rest) != 0 {
		return der, 0
	}
	switch {
	case v.Class == asn1.ClassUniversal && v.Tag == asn1.TagInteger:
		var i int64
		if _, err := asn1.Unmarshal(der, &i); err == nil && i == from {
			out, _ := asn1.Marshal(to)
			return out, 1
		}
		return der, 0
	case v.IsCompound:
		var body []byte
		total := 0
		for rest := v.Bytes; len(rest) > 0; {
			var child asn1.RawValue
			next, err := asn1.Unmarshal(rest, &child)
			if err != nil {
				return der, 0
			}
			out, n := rewriteValue(child.FullBytes, from, to)
			body = append(body, out...)
			total += n
			rest = next
		}
		return remarshal(v, body), total
	case v.Class == asn1.ClassUniversal && v.Tag == asn1.TagOctetString:
		if out, n := rewriteValue(v.Bytes, from, to); n > 0 {
			return remarshal(v, out), n
		}
	}
	return der, 0
}

func remarshal(v asn1.RawValue, body []byte) []byte {
	out, err := asn1.Marshal(asn1.RawValue{Class: v.Class, Tag: v.Tag, IsCompound: v.IsCompound, Bytes: body})
	if err != nil {
		panic(err)
	}
	return out
}

// dropMAC removes a PFX's MacData, as a password-less bundle has none.
func dropMAC(t *testing.T, der []byte) []byte {
	t.Helper()
	var pfx struct {
		Version  int
		AuthSafe asn1.RawValue
		MacData  asn1.RawValue `asn1:"optional"`
	}
	if _, err := asn1.Unmarshal(der, &pfx); err != nil {
		t.Fatal(err)
	}
	out, err := asn1.Marshal(struct {
		Version  int
		AuthSafe asn1.RawValue
	}{pfx.Version, pfx.AuthSafe})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// hiddenKeyBagPFX builds a MAC-less, password-less PFX whose only safe is
// encrypted (PBES2, one iteration) and holds a shrouded key bag asking
// for iterations rounds of PBKDF2: invisible until the safe is decrypted.
func hiddenKeyBagPFX(t *testing.T, iterations int) []byte {
	t.Helper()
	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	oid := func(s ...int) asn1.ObjectIdentifier { return s }
	pbkdf2OID, pbes2OID, aes256 := oid(1, 2, 840, 113549, 1, 5, 12), oid(1, 2, 840, 113549, 1, 5, 13), oid(2, 16, 840, 1, 101, 3, 4, 1, 42)
	hmacSHA256 := pkix.AlgorithmIdentifier{Algorithm: oid(1, 2, 840, 113549, 2, 9), Parameters: asn1.NullRawValue}
	pbes2 := func(iter int, iv []byte) pkix.AlgorithmIdentifier {
		kdf := must(asn1.Marshal(struct {
			Salt []byte
			Iter int
			PRF  pkix.AlgorithmIdentifier
		}{bytes.Repeat([]byte{1}, 8), iter, hmacSHA256}))
		params := must(asn1.Marshal(struct {
			KDF    pkix.AlgorithmIdentifier
			Scheme pkix.AlgorithmIdentifier
		}{
			pkix.AlgorithmIdentifier{Algorithm: pbkdf2OID, Parameters: asn1.RawValue{FullBytes: kdf}},
			pkix.AlgorithmIdentifier{Algorithm: aes256, Parameters: asn1.RawValue{FullBytes: must(asn1.Marshal(iv))}},
		}))
		return pkix.AlgorithmIdentifier{Algorithm: pbes2OID, Parameters: asn1.RawValue{FullBytes: params}}
	}
	iv := bytes.Repeat([]byte{2}, 16)
	keyInfo := must(asn1.Marshal(struct {
		Alg  pkix.AlgorithmIdentifier
		Data []byte
	}{pbes2(iterations, iv), bytes.Repeat([]byte{3}, 32)}))
	explicit0 := func(der []byte) asn1.RawValue {
		return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: der}
	}
	safe := must(asn1.Marshal([]struct {
		ID    asn1.ObjectIdentifier
		Value asn1.RawValue
	}{{oid(1, 2, 840, 113549, 1, 12, 10, 1, 2), explicit0(keyInfo)}}))
	// Encrypt the safe as go-pkcs12 decrypts PBES2: PBKDF2 over the UTF-8
	// password (empty), AES-256-CBC, PKCS#7 padding.
	key, err := pbkdf2.Key(sha256.New, "", bytes.Repeat([]byte{1}, 8), 1, 32)
	if err != nil {
		t.Fatal(err)
	}
	pad := aes.BlockSize - len(safe)%aes.BlockSize
	plain := append(safe, bytes.Repeat([]byte{byte(pad)}, pad)...)
	block, _ := aes.NewCipher(key)
	sealed := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(sealed, plain)
	encData := must(asn1.Marshal(struct {
		Version int
		Info    struct {
			ContentType asn1.ObjectIdentifier
			Algorithm   pkix.AlgorithmIdentifier
			Content     []byte `asn1:"tag:0"`
		}
	}{0, struct {
		ContentType asn1.ObjectIdentifier
		Algorithm   pkix.AlgorithmIdentifier
		Content     []byte `asn1:"tag:0"`
	}{oid(1, 2, 840, 113549, 1, 7, 1), pbes2(1, iv), sealed}}))
	type contentInfo struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue
	}
	authSafe := must(asn1.Marshal([]contentInfo{{oid(1, 2, 840, 113549, 1, 7, 6), explicit0(encData)}}))
	return must(asn1.Marshal(struct {
		Version  int
		AuthSafe contentInfo
	}{3, contentInfo{oid(1, 2, 840, 113549, 1, 7, 1), explicit0(must(asn1.Marshal(authSafe)))}}))
}
