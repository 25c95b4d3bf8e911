package dataplane_test

import (
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"net"
	"strings"
	"testing"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
)

const tlsListener = `
listeners:
  - name: web
    protocol: TERMINATED_HTTPS
    bind: 127.0.0.1:0
    default_tls_container_ref: file://{{dir}}/default.pem
    sni_container_refs: [file://{{dir}}/shop.pem]
    client_authentication: OPTIONAL
    client_ca_tls_container_ref: file://{{dir}}/clients.pem
    insert_headers:
      X-Forwarded-For: "true"
      X-Forwarded-Port: "true"
      X-Forwarded-Proto: "true"
      X-SSL-Client-Verify: "true"
      X-SSL-Client-Has-Cert: "true"
      X-SSL-Client-DN: "true"
      X-SSL-Client-CN: "true"
      X-SSL-Issuer: "true"
      X-SSL-Client-SHA1: "true"
      X-SSL-Client-Not-Before: "true"
      X-SSL-Client-Not-After: "true"
    hsts_max_age: 31536000
    hsts_include_subdomains: true
    default_pool: app
  - name: plain
    protocol: HTTP
    bind: 127.0.0.2:0
    default_pool: app
pools:
  - name: app
    members: [{address: 127.0.0.1, protocol_port: BACKEND}]
`

func TestHeaders(t *testing.T) {
	h := newHarness(t)
	backend := tu.EchoBackend(t)
	_, port := tu.HostPort(t, backend.URL)
	h.cert("default.pem", "default.example")
	h.cert("shop.pem", "shop.example")
	clientCA := tu.CA(t, "Client CA")
	tu.WriteFile(t, h.dir, "clients.pem", pki.CertPEM(clientCA.Cert))
	h.mustApply(strings.ReplaceAll(tlsListener, "BACKEND", port))
	addr := h.addr("127.0.0.1:0")
	_, listenerPort, _ := net.SplitHostPort(addr)

	cc, ck, err := clientCA.Issue(pki.Request{CommonName: "client-good", Organization: "Example Org", Usage: pki.ClientAuth})
	if err != nil {
		t.Fatal(err)
	}
	clientCert := tls.Certificate{Certificate: [][]byte{cc.Raw}, PrivateKey: ck}

	t.Run("TLS with client certificate", func(t *testing.T) {
		c := h.client("shop.example", false, clientCert)
		req := newRequest(t, "GET", "https://"+addr+"/x", nil)
		req.Header.Add("X-Forwarded-For", "203.0.113.7")
		req.Header.Set("X-Forwarded-Proto", "http")
		req.Header.Set("X-Forwarded-Port", "1")
		req.Header.Set("X-SSL-Client-CN", "forged-admin")
		req.Header.Set("X-SSL-Client-Verify", "0")
		resp, e := get(t, c, req)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		sum := sha1.Sum(cc.Raw)
		want := map[string]string{
			"X-Forwarded-For":         "203.0.113.7,127.0.0.1",
			"X-Forwarded-Proto":       "https",
			"X-Forwarded-Port":        listenerPort,
			"X-Ssl-Client-Verify":     "0",
			"X-Ssl-Client-Has-Cert":   "1",
			"X-Ssl-Client-Dn":         "/O=Example Org/CN=client-good",
			"X-Ssl-Client-Cn":         "client-good",
			"X-Ssl-Issuer":            "/CN=Client CA",
			"X-Ssl-Client-Sha1":       strings.ToUpper(hex.EncodeToString(sum[:])),
			"X-Ssl-Client-Not-Before": cc.NotBefore.UTC().Format("060102150405Z"),
			"X-Ssl-Client-Not-After":  cc.NotAfter.UTC().Format("060102150405Z"),
		}
		for k, v := range want {
			if got := strings.Join(e.Header[k], ","); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000; includeSubDomains" {
			t.Errorf("HSTS = %q", got)
		}
		if e.Host != addr {
			t.Errorf("Host = %q, want the client's %q", e.Host, addr)
		}
	})

	t.Run("TLS without client certificate", func(t *testing.T) {
		c := h.client("shop.example", true)
		req := newRequest(t, "GET", "https://"+addr+"/", nil)
		req.Header.Set("X-SSL-Client-Has-Cert", "1")
		req.Header.Set("X-SSL-Client-DN", "/CN=forged")
		resp, e := get(t, c, req)
		if resp.ProtoMajor != 2 {
			t.Errorf("client spoke %s, want HTTP/2", resp.Proto)
		}
		if got := e.Header.Get("X-Ssl-Client-Has-Cert"); got != "0" {
			t.Errorf("Has-Cert = %q, want 0", got)
		}
		if got := e.Header["X-Ssl-Client-Dn"]; len(got) != 1 || got[0] != "" {
			t.Errorf("DN = %q, want one empty value (haproxy sets the header empty)", got)
		}
	})

	t.Run("HTTP listener strips forged SSL headers and passes others", func(t *testing.T) {
		c := tu.Client(nil, "", false)
		plain := h.addr("127.0.0.2:0")
		req := newRequest(t, "GET", "http://"+plain+"/", nil)
		req.Header.Set("X-Forwarded-For", "198.51.100.1")
		req.Header.Set("X-SSL-Client-CN", "forged")
		resp, e := get(t, c, req)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got := strings.Join(e.Header["X-Forwarded-For"], ","); got != "198.51.100.1" {
			t.Errorf("X-Forwarded-For = %q: without insert_headers it passes through untouched", got)
		}
		if v, ok := e.Header["X-Ssl-Client-Cn"]; ok {
			t.Errorf("forged X-SSL-Client-CN reached the backend: %q", v)
		}
		if resp.Header.Get("Strict-Transport-Security") != "" {
			t.Error("HSTS on a plain HTTP listener")
		}
	})
}
