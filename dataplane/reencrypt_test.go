package dataplane_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
)

func TestReencryption(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	memberCA := tu.CA(t, "member CA")
	clientCA := tu.CA(t, "terminator client CA")
	mc, mk, _ := memberCA.Issue(pki.Request{CommonName: "member", IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, Usage: pki.ServerAuth})
	member := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls member, client %s", r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	member.TLS = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{mc.Raw}, PrivateKey: mk}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    tu.Pool(clientCA),
	}
	member.StartTLS()
	defer member.Close()
	port := member.Listener.Addr().(*net.TCPAddr).Port

	cc, ck, _ := clientCA.Issue(pki.Request{CommonName: "terminator", Usage: pki.ClientAuth})
	tu.WriteFile(t, h.dir, "client.pem", append(pki.CertPEM(cc), tu.KeyPEM(t, ck)...))
	tu.WriteFile(t, h.dir, "member-ca.pem", pki.CertPEM(memberCA.Cert))
	emptyCRL, _ := memberCA.CRL(nil, 0)
	revokedCRL, _ := memberCA.CRL([]*x509.Certificate{mc}, 0)
	tu.WriteFile(t, h.dir, "empty.crl", emptyCRL)
	tu.WriteFile(t, h.dir, "revoked.crl", revokedCRL)

	get := func(poolTLS string) (int, string) {
		t.Helper()
		h.mustApply(oneListener("", fmt.Sprintf("{address: 127.0.0.1, protocol_port: %d}", port)) + poolTLS)
		resp, err := h.client("site.example", false).Get("https://" + h.addr("127.0.0.1:0") + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	full := "    tls_enabled: true\n    ca_tls_container_ref: file://{{dir}}/member-ca.pem\n    tls_container_ref: file://{{dir}}/client.pem\n"
	if code, body := get(full + "    crl_container_ref: file://{{dir}}/empty.crl\n"); code != 200 || body != "tls member, client terminator" {
		t.Fatalf("re-encryption with a client certificate: %d %q", code, body)
	}
	if code, _ := get("    tls_enabled: true\n    ca_tls_container_ref: file://{{dir}}/member-ca.pem\n"); code != 502 {
		t.Fatalf("without the client certificate the member must refuse: %d", code)
	}
	if code, _ := get(full + "    crl_container_ref: file://{{dir}}/revoked.crl\n"); code != 502 {
		t.Fatalf("a member with a revoked certificate must be refused: %d", code)
	}
	otherCA := tu.CA(t, "other CA")
	tu.WriteFile(t, h.dir, "other-ca.pem", pki.CertPEM(otherCA.Cert))
	if code, _ := get("    tls_enabled: true\n    ca_tls_container_ref: file://{{dir}}/other-ca.pem\n    tls_container_ref: file://{{dir}}/client.pem\n"); code != 502 {
		t.Fatalf("a member not signed by the pool CA must be refused: %d", code)
	}
	if code, body := get("    tls_enabled: true\n    tls_container_ref: file://{{dir}}/client.pem\n"); code != 200 || !strings.HasPrefix(body, "tls member") {
		t.Fatalf("without a CA (verify none) the member is not verified: %d %q", code, body)
	}
}
