package sni_test

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
	"github.com/terminator-proxy/terminator/sni"
)

func bundle(t testing.TB, ca *pki.CA, kt pki.KeyType, names ...string) *certs.Bundle {
	t.Helper()
	c, k := testutil.Leaf(t, ca, kt, names...)
	b, err := certs.Assemble("test:"+names[0], c, k, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serve runs a TLS server with cfg on loopback and returns its address.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Every connection goroutine ends before the test does: one that
	// logged after it would race with the test's end.
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					t.Logf("server handshake: %v", err)
				}
				_, _ = c.Write([]byte("x"))
			}()
		}
	}()
	return ln.Addr().String()
}

// handshake connects with client settings and returns the leaf the server
// presented.
func handshake(t *testing.T, addr string, cc *tls.Config) (*x509.Certificate, error) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, cc)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	buf := make([]byte, 1)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, err
	}
	return conn.ConnectionState().PeerCertificates[0], nil
}

func TestSelection(t *testing.T) {
	ca := testutil.CA(t, "ca")
	def := bundle(t, ca, pki.ECDSAP256, "default.example")
	shopEC := bundle(t, ca, pki.ECDSAP256, "shop.example", "www.shop.example")
	shopRSA := bundle(t, ca, pki.RSA2048, "shop.example")
	wild := bundle(t, ca, pki.ECDSAP256, "*.apps.example")
	store, err := sni.NewStore(def, []*certs.Bundle{shopRSA, shopEC, wild}, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := sni.NewServerConfig(sni.ServerOptions{Store: store, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return cfg, nil }})
	roots := testutil.Pool(ca)
	rsaOnly := []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	cases := []struct {
		name       string
		serverName string
		maxVersion uint16
		suites     []uint16
		want       *certs.Bundle
	}{
		{"exact", "shop.example", 0, nil, shopEC},
		{"exact second SAN", "www.shop.example", 0, nil, shopEC},
		{"case and trailing dot", "SHOP.Example.", 0, nil, shopEC},
		{"wildcard one label", "a.apps.example", 0, nil, wild},
		{"wildcard does not cover two labels", "a.b.apps.example", 0, nil, def},
		{"wildcard does not cover the bare domain", "apps.example", 0, nil, def},
		{"no match gets default", "unknown.example", 0, nil, def},
		{"no SNI gets default", "", 0, nil, def},
		{"RSA-only client gets the RSA twin", "shop.example", tls.VersionTLS12, rsaOnly, shopRSA},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cc := &tls.Config{RootCAs: roots, ServerName: tc.serverName, MaxVersion: tc.maxVersion, CipherSuites: tc.suites, InsecureSkipVerify: true}
			got, err := handshake(t, addr, cc)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tc.want.Leaf()) {
				t.Fatalf("served %v (%T), want %v", got.DNSNames, got.PublicKey, tc.want.Names)
			}
		})
	}
}

func TestDefaultTwinForRSAOnlyClients(t *testing.T) {
	ca := testutil.CA(t, "ca")
	ec := bundle(t, ca, pki.ECDSAP256, "site.example")
	rsa := bundle(t, ca, pki.RSA2048, "site.example")
	store, _ := sni.NewStore(ec, []*certs.Bundle{rsa}, false)
	cfg, _ := sni.NewServerConfig(sni.ServerOptions{Store: store})
	addr := serve(t, &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return cfg, nil }})
	got, err := handshake(t, addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(rsa.Leaf()) {
		t.Fatal("an RSA-only client without SNI did not get the RSA twin of the default")
	}
}

func TestStrictSNI(t *testing.T) {
	ca := testutil.CA(t, "ca")
	def := bundle(t, ca, pki.ECDSAP256, "default.example")
	shop := bundle(t, ca, pki.ECDSAP256, "shop.example")
	store, _ := sni.NewStore(def, []*certs.Bundle{shop}, true)
	hello := func(name string) *tls.ClientHelloInfo {
		return &tls.ClientHelloInfo{ServerName: name, SupportedVersions: []uint16{tls.VersionTLS13}, SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256}, SupportedCurves: []tls.CurveID{tls.CurveP256}}
	}
	if _, err := store.GetCertificate(hello("unknown.example")); !errors.Is(err, sni.ErrUnknownServerName) {
		t.Fatalf("strict store served an unknown name: %v", err)
	}
	if c, err := store.GetCertificate(hello("")); err != nil || c != def.TLS {
		t.Fatalf("strict store must still serve the default without SNI: %v", err)
	}
	if c, err := store.GetCertificate(hello("shop.example")); err != nil || c != shop.TLS {
		t.Fatalf("strict store lost a known name: %v", err)
	}
	cfg, _ := sni.NewServerConfig(sni.ServerOptions{Store: store})
	addr := serve(t, &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return cfg, nil }})
	if _, err := handshake(t, addr, &tls.Config{InsecureSkipVerify: true, ServerName: "unknown.example"}); err == nil {
		t.Fatal("strict SNI handshake for an unknown name succeeded")
	}
}

func TestDefaultIsFirstSNIWhenUnset(t *testing.T) {
	ca := testutil.CA(t, "ca")
	a := bundle(t, ca, pki.ECDSAP256, "a.example")
	b := bundle(t, ca, pki.ECDSAP256, "b.example")
	store, err := sni.NewStore(nil, []*certs.Bundle{a, b}, false)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := store.GetCertificate(&tls.ClientHelloInfo{}); c != a.TLS {
		t.Fatal("without a default certificate the first SNI certificate must be the default")
	}
	if _, err := sni.NewStore(nil, nil, false); err == nil {
		t.Fatal("an empty store was accepted")
	}
}

func TestManyNames(t *testing.T) {
	ca := testutil.CA(t, "ca")
	bundles := manyBundles(t, ca, 2000)
	store, err := sni.NewStore(bundles[0], bundles[1:], true)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range bundles {
		c, err := store.GetCertificate(&tls.ClientHelloInfo{ServerName: b.Names[0]})
		if err != nil || c != b.TLS {
			t.Fatalf("name %d (%s) resolved to the wrong certificate: %v", i, b.Names[0], err)
		}
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	ca := testutil.CA(t, "ca")
	bundles := manyBundles(t, ca, 100)
	store, _ := sni.NewStore(bundles[0], bundles[1:], false)
	hello := &tls.ClientHelloInfo{ServerName: bundles[50].Names[0]}
	wild := &tls.ClientHelloInfo{ServerName: "x.wild.example"}
	if n := testing.AllocsPerRun(1000, func() {
		_, _ = store.GetCertificate(hello)
		_, _ = store.GetCertificate(wild)
	}); n != 0 {
		t.Fatalf("GetCertificate allocates %.1f times per lookup", n)
	}
}

// manyBundles issues n certificates sharing one key (issuing is the slow
// part of the test, not the store), named host<i>.example.
func manyBundles(t testing.TB, ca *pki.CA, n int) []*certs.Bundle {
	t.Helper()
	key, err := pki.NewKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*certs.Bundle, n)
	for i := range n {
		name := fmt.Sprintf("host%d.example", i)
		c, _, err := ca.Issue(pki.Request{CommonName: name, DNSNames: []string{name}, Key: key.Public(), IPAddresses: []net.IP{}})
		if err != nil {
			t.Fatal(err)
		}
		out[i], err = certs.Assemble("test:"+name, c, crypto.Signer(key), nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func BenchmarkLookup10k(b *testing.B) {
	ca := testutil.CA(b, "ca")
	bundles := manyBundles(b, ca, 10000)
	store, err := sni.NewStore(bundles[0], bundles[1:], false)
	if err != nil {
		b.Fatal(err)
	}
	hellos := make([]*tls.ClientHelloInfo, 1024)
	for i := range hellos {
		hellos[i] = &tls.ClientHelloInfo{ServerName: bundles[(i*7919)%len(bundles)].Names[0]}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := store.GetCertificate(hellos[i&1023]); err != nil {
			b.Fatal(err)
		}
	}
}

// TestChoiceParsesNothing: bundles keep no parsed leaf, but a name with a
// choice (ECDSA and RSA) is decided by SupportsCertificate, which parses
// the leaf when it is missing. The store gives those candidates their
// leaf once, so the per-handshake choice costs only SupportsCertificate's
// own checks (17 allocations here; 106 when it parses).
func TestChoiceParsesNothing(t *testing.T) {
	ca := testutil.CA(t, "ca")
	ec := bundle(t, ca, pki.ECDSAP256, "shop.example")
	rsa := bundle(t, ca, pki.RSA2048, "shop.example")
	other := bundle(t, ca, pki.ECDSAP256, "other.example")
	store, err := sni.NewStore(other, []*certs.Bundle{ec, rsa}, false)
	if err != nil {
		t.Fatal(err)
	}
	if ec.TLS.Leaf != nil || rsa.TLS.Leaf != nil {
		t.Fatal("the store modified a bundle's certificate")
	}
	rsaOnly := &tls.ClientHelloInfo{
		ServerName:        "shop.example",
		CipherSuites:      []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
		SupportedCurves:   []tls.CurveID{tls.X25519},
		SignatureSchemes:  []tls.SignatureScheme{tls.PSSWithSHA256, tls.PKCS1WithSHA256},
		SupportedVersions: []uint16{tls.VersionTLS12},
		SupportedPoints:   []uint8{0},
	}
	var got *tls.Certificate
	allocs := testing.AllocsPerRun(50, func() { got, _ = store.GetCertificate(rsaOnly) })
	if got == nil || !bytes.Equal(got.Certificate[0], rsa.TLS.Certificate[0]) {
		t.Fatal("an RSA-only client did not get the RSA certificate")
	}
	if allocs > 30 {
		t.Fatalf("choosing between two certificates allocated %.0f times per handshake (106 when the leaf is parsed each time)", allocs)
	}
}
