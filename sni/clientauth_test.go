package sni_test

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
	"github.com/terminator-proxy/terminator/sni"
)

func TestClientAuthModes(t *testing.T) {
	serverCA := testutil.CA(t, "servers")
	clientCA := testutil.CA(t, "clients")
	otherCA := testutil.CA(t, "other")
	store, _ := sni.NewStore(bundle(t, serverCA, pki.ECDSAP256, "svc.example"), nil, false)
	issue := func(ca *pki.CA, r pki.Request) tls.Certificate {
		c, k, err := ca.Issue(r)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}
	}
	good := issue(clientCA, pki.Request{CommonName: "good", Usage: pki.ClientAuth})
	revoked := issue(clientCA, pki.Request{CommonName: "revoked", Usage: pki.ClientAuth})
	expired := issue(clientCA, pki.Request{CommonName: "expired", Usage: pki.ClientAuth, NotBefore: time.Now().Add(-48 * time.Hour), Validity: time.Hour})
	serverUse := issue(clientCA, pki.Request{CommonName: "server-only", Usage: pki.ServerAuth})
	foreign := issue(otherCA, pki.Request{CommonName: "foreign", Usage: pki.ClientAuth})
	crlPEM, _ := clientCA.CRL([]*x509.Certificate{revoked.Leaf}, 0)
	rev, err := certs.ParseCRL("crl", crlPEM, []*x509.Certificate{clientCA.Cert})
	if err != nil {
		t.Fatal(err)
	}

	type attempt struct {
		cert *tls.Certificate
		ok   bool
	}
	modes := map[string][]attempt{
		sni.ClientAuthNone:      {{nil, true}, {&good, true}, {&foreign, true}},
		sni.ClientAuthOptional:  {{nil, true}, {&good, true}, {&revoked, false}, {&expired, false}, {&foreign, false}, {&serverUse, false}},
		sni.ClientAuthMandatory: {{nil, false}, {&good, true}, {&revoked, false}, {&expired, false}, {&foreign, false}, {&serverUse, false}},
	}
	for mode, attempts := range modes {
		cfg, err := sni.NewServerConfig(sni.ServerOptions{Store: store, ClientAuth: mode, ClientCAs: []*x509.Certificate{clientCA.Cert}, Revocations: rev})
		if err != nil {
			t.Fatal(err)
		}
		addr := serve(t, &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return cfg, nil }})
		for _, a := range attempts {
			name := "none"
			cc := &tls.Config{RootCAs: testutil.Pool(serverCA), ServerName: "svc.example"}
			if a.cert != nil {
				name = a.cert.Leaf.Subject.CommonName
				// Present the certificate whatever CAs the server names, as a
				// hostile or misconfigured client would.
				cert := a.cert
				cc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
			}
			t.Run(mode+"/"+name, func(t *testing.T) {
				_, err := handshake(t, addr, cc)
				if (err == nil) != a.ok {
					t.Fatalf("handshake error = %v, want success %v", err, a.ok)
				}
			})
		}
	}
}

func TestClientAuthNeverFallsBack(t *testing.T) {
	ca := testutil.CA(t, "ca")
	store, _ := sni.NewStore(bundle(t, ca, pki.ECDSAP256, "svc.example"), nil, false)
	for _, mode := range []string{sni.ClientAuthOptional, sni.ClientAuthMandatory} {
		if _, err := sni.NewServerConfig(sni.ServerOptions{Store: store, ClientAuth: mode}); err == nil {
			t.Fatalf("%s without a client CA was accepted", mode)
		}
	}
}

// A resumed session is checked against the CA and CRL of the config that
// resumes it: revoking a client after its first handshake stops its
// resumptions too.
func TestResumedSessionsAreVerified(t *testing.T) {
	serverCA := testutil.CA(t, "servers")
	clientCA := testutil.CA(t, "clients")
	store, _ := sni.NewStore(bundle(t, serverCA, pki.ECDSAP256, "svc.example"), nil, false)
	c, k, _ := clientCA.Issue(pki.Request{CommonName: "later-revoked", Usage: pki.ClientAuth})
	client := tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k}
	open, _ := sni.NewServerConfig(sni.ServerOptions{Store: store, ClientAuth: sni.ClientAuthMandatory, ClientCAs: []*x509.Certificate{clientCA.Cert}})
	crlPEM, _ := clientCA.CRL([]*x509.Certificate{c}, 0)
	rev, _ := certs.ParseCRL("crl", crlPEM, []*x509.Certificate{clientCA.Cert})
	closed, _ := sni.NewServerConfig(sni.ServerOptions{Store: store, ClientAuth: sni.ClientAuthMandatory, ClientCAs: []*x509.Certificate{clientCA.Cert}, Revocations: rev})

	current := open
	base := &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return current, nil }}
	addr := serve(t, base)
	cache := tls.NewLRUClientSessionCache(4)
	cc := &tls.Config{RootCAs: testutil.Pool(serverCA), ServerName: "svc.example", Certificates: []tls.Certificate{client}, ClientSessionCache: cache, MaxVersion: tls.VersionTLS12}
	if _, err := handshake(t, addr, cc); err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", addr, cc)
	if err != nil {
		t.Fatal(err)
	}
	resumed := conn.ConnectionState().DidResume
	conn.Close()
	if !resumed {
		t.Fatal("the session did not resume with an unchanged config (tickets lost?)")
	}
	current = closed
	if _, err := handshake(t, addr, cc); err == nil {
		t.Fatal("a revoked client resumed its session")
	}
}
