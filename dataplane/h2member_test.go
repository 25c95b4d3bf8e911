package dataplane_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
)

// TestH2PoolMemberWithoutH2: a pool offering h2 and http/1.1 to a TLS
// member that selects http/1.1 is served in HTTP/1.1 over keep-alive
// connections, and h2 is not offered again on every request (the member
// sees one extra connection, the one where it declined h2, not one per
// request). A member selecting h2 in the same pool gets HTTP/2.
func TestH2PoolMemberWithoutH2(t *testing.T) {
	tu.NoLeaks(t)
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	memberCert, memberKey := tu.Leaf(t, h.ca, pki.ECDSAP256, "member.example")
	cert := tls.Certificate{Certificate: [][]byte{memberCert.Raw}, PrivateKey: memberKey}
	tu.WriteFile(t, h.dir, "ca.pem", pki.CertPEM(h.ca.Cert))

	member := func(protos ...string) (entry string, conns *atomic.Int32) {
		conns = new(atomic.Int32)
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, r.Proto)
			}),
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: protos},
			ConnState: func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			},
		}
		if len(protos) == 1 {
			srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){} // HTTP/1.1 only
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.ServeTLS(ln, "", "") }()
		t.Cleanup(func() { _ = srv.Close() })
		host, port, _ := net.SplitHostPort(ln.Addr().String())
		return fmt.Sprintf("{address: %s, protocol_port: %s}", host, port), conns
	}
	h1Member, h1Conns := member("http/1.1")
	h2Member, _ := member("h2", "http/1.1")
	h.mustApply(`
listeners:
  - {name: h1, protocol: TERMINATED_HTTPS, bind: "127.0.0.1:0", default_tls_container_ref: "file://{{dir}}/site.pem", default_pool: old}
pools:
  - {name: old, tls_enabled: true, alpn_protocols: [h2, http/1.1], ca_tls_container_ref: "file://{{dir}}/ca.pem", members: [` + h1Member + `]}
`)
	get := func() string {
		t.Helper()
		res, err := h.client("site.example", true).Get("https://" + h.addr("127.0.0.1:0") + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", res.StatusCode, b)
		}
		return string(b)
	}
	for i := range 5 {
		if got := get(); got != "HTTP/1.1" {
			t.Fatalf("request %d: member spoke %s, want HTTP/1.1", i, got)
		}
	}
	if n := h1Conns.Load(); n != 2 {
		t.Errorf("the HTTP/1.1 member saw %d connections for 5 requests, want 2 (the declined h2 offer, then one kept alive)", n)
	}
	h.mustApply(`
listeners:
  - {name: h1, protocol: TERMINATED_HTTPS, bind: "127.0.0.1:0", default_tls_container_ref: "file://{{dir}}/site.pem", default_pool: new}
pools:
  - {name: new, tls_enabled: true, alpn_protocols: [h2, http/1.1], ca_tls_container_ref: "file://{{dir}}/ca.pem", members: [` + h2Member + `]}
`)
	if got := get(); got != "HTTP/2.0" {
		t.Fatalf("member selecting h2 spoke %s", got)
	}
}
