package dataplane_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	acmeapi "golang.org/x/crypto/acme"

	"github.com/terminator-proxy/terminator/dataplane"
	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
)

// pending is a challenge responder with one pending challenge of each
// type, as the ACME manager presents them (the answers are made with
// x/crypto/acme, as the manager makes them).
type pending struct {
	token, keyAuth, name string
	cert                 *tls.Certificate
}

func (p *pending) HTTP01(token string) (string, bool) { return p.keyAuth, token == p.token }

func (p *pending) TLSALPN01(name string) (*tls.Certificate, bool) { return p.cert, name == p.name }

func newPending(t *testing.T) *pending {
	key, err := pki.NewKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	cl := &acmeapi.Client{Key: key}
	p := &pending{token: "tok3n-0123456789abcdef", name: "shop.example"}
	p.keyAuth, _ = cl.HTTP01ChallengeResponse(p.token)
	cert, err := cl.TLSALPN01ChallengeCert(p.token, p.name)
	if err != nil {
		t.Fatal(err)
	}
	p.cert = &cert
	return p
}

// TestACMEChallengesOnListeners: a TLS-ALPN-01 validation completes on a
// listener that requires client certificates, and its connection is closed
// without serving a request; offering acme-tls/1 beside other protocols,
// or for a name without a pending challenge, gets the listener's normal
// policy. HTTP-01 is answered before the HTTP listener's redirect.
func TestACMEChallengesOnListeners(t *testing.T) {
	tu.NoLeaks(t)
	p := newPending(t)
	h := newHarnessWith(t, func(o *dataplane.Options) { o.Challenges = p })
	h.cert("site.pem", "shop.example")
	clientCA := tu.CA(t, "clients")
	tu.WriteFile(t, h.dir, "clients.pem", pki.CertPEM(clientCA.Cert))
	backend := tu.EchoBackend(t)
	httpBind := fmt.Sprintf("127.0.0.1:%d", tu.FreePort(t))
	h.mustApply(oneListener(`    client_authentication: MANDATORY
    client_ca_tls_container_ref: file://{{dir}}/clients.pem
  - name: plain
    protocol: HTTP
    bind: `+httpBind+`
    https_redirect: {}
    default_pool: app`, member(t, backend.URL)))
	tlsAddr, httpAddr := h.addr("127.0.0.1:0"), h.addr(httpBind)

	// The validation handshake: acme-tls/1 alone, no client certificate.
	c, err := tls.Dial("tcp", tlsAddr, &tls.Config{ServerName: "shop.example", NextProtos: []string{"acme-tls/1"}, InsecureSkipVerify: true}) //nolint:gosec // checking the challenge certificate
	if err != nil {
		t.Fatalf("TLS-ALPN-01 validation handshake: %v", err)
	}
	cs := c.ConnectionState()
	if cs.NegotiatedProtocol != "acme-tls/1" || cs.PeerCertificates[0].SerialNumber.Cmp(mustLeaf(t, p.cert).SerialNumber) != 0 {
		t.Fatalf("validation got protocol %q and not the challenge certificate", cs.NegotiatedProtocol)
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := io.ReadAll(c); len(n) != 0 || (err != nil && strings.Contains(err.Error(), "timeout")) {
		t.Fatalf("a validation connection was served: %q %v", n, err)
	}
	c.Close()

	// Anything else gets the listener's policy: a client certificate.
	for _, tc := range []struct {
		name  string
		proto []string
	}{{"shop.example", []string{"acme-tls/1", "http/1.1"}}, {"other.example", []string{"acme-tls/1"}}} {
		c, err := tls.Dial("tcp", tlsAddr, &tls.Config{ServerName: tc.name, NextProtos: tc.proto, InsecureSkipVerify: true}) //nolint:gosec // the refusal is what is checked
		if err == nil {
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if err == nil || strings.Contains(err.Error(), "timeout") {
			t.Errorf("%s offering %v without a client certificate was not refused: %v", tc.name, tc.proto, err)
		}
	}

	// HTTP-01 before the redirect; other tokens are redirected.
	get := func(path string) (int, string) {
		conn, err := net.Dial("tcp", httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n", path)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/.well-known/acme-challenge/" + p.token); code != http.StatusOK || body != p.keyAuth {
		t.Errorf("HTTP-01: %d %q, want 200 and the key authorization", code, body)
	}
	if code, _ := get("/.well-known/acme-challenge/other-token-0123456789"); code != http.StatusMovedPermanently {
		t.Errorf("an unknown token: %d, want the listener's redirect (301)", code)
	}
}

func mustLeaf(t *testing.T, c *tls.Certificate) *x509.Certificate {
	l, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return l
}
