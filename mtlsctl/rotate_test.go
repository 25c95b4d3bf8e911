package mtlsctl_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/mtlsctl"
	"github.com/terminator-proxy/terminator/pki"
)

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// TestRotateWithOpenConnection: PUT /v1/certificate serves the new
// certificate to new handshakes while an open connection carries on.
func TestRotateWithOpenConnection(t *testing.T) {
	e := newEnv(t, nil)
	var seen []*tls.ConnectionState
	tc := &tls.Config{RootCAs: tu.Pool(e.serverCA), ServerName: "amp-1", Certificates: []tls.Certificate{e.controller}}
	tr := &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	long := &http.Client{Transport: tr}
	get := func(c *http.Client) string {
		resp, err := c.Get("https://" + e.addr + "/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		seen = append(seen, resp.TLS)
		return resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	if got := get(long); got != "amp-1" {
		t.Fatalf("initial certificate %q", got)
	}
	next := issuePair(t, e.serverCA, pki.Request{CommonName: "amp-1-rotated", DNSNames: []string{"amp-1"}, Usage: pki.ServerAuth})
	code, body, _ := e.call("PUT", "/v1/certificate", pemPair(t, next), nil)
	if code != 200 {
		t.Fatalf("rotate: %d %v", code, body)
	}
	if got := get(long); got != "amp-1" {
		t.Fatalf("the open connection changed certificate: %q (it must carry on)", got)
	}
	if seen[0].TLSUnique != nil && string(seen[0].TLSUnique) != string(seen[1].TLSUnique) {
		t.Fatal("the long-lived connection was not reused")
	}
	fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: tc.Clone()}}
	if got := get(fresh); got != "amp-1-rotated" {
		t.Fatalf("a new handshake got %q, want the rotated certificate", got)
	}
	// A client certificate is refused as the server's.
	bad := issuePair(t, e.clientCA, pki.Request{CommonName: "x", Usage: pki.ClientAuth})
	if code, _, _ := e.call("PUT", "/v1/certificate", pemPair(t, bad), nil); code != 400 {
		t.Fatalf("rotating to a client-only certificate: %d", code)
	}
	// Restart keeps the rotated certificate.
	e.stop()
	e.start(nil)
	if got := get(&http.Client{Transport: &http.Transport{TLSClientConfig: tc.Clone()}}); got != "amp-1-rotated" {
		t.Fatalf("after restart the control API serves %q", got)
	}
}

type caSigner struct {
	ca    *pki.CA
	calls atomic.Int64
}

func (s *caSigner) SignCSR(_ context.Context, csr []byte, validity time.Duration) ([]byte, error) {
	s.calls.Add(1)
	c, err := s.ca.SignCSR(csr, pki.ServerAuth, validity)
	if err != nil {
		return nil, err
	}
	return pki.CertPEM(c), nil
}

// TestSelfRenewal: a short-lived control certificate is renewed by CSR at
// two thirds of its life, and the not-after reported moves forward.
func TestSelfRenewal(t *testing.T) {
	e := newEnv(t, func(e *env) {
		short := issuePair(t, e.serverCA, pki.Request{CommonName: "amp-1", DNSNames: []string{"amp-1"}, Usage: pki.ServerAuth, Validity: 3 * time.Second})
		tu.WriteFile(t, e.dir, "control.pem", pemPair(t, short))
	})
	e.stop()
	signer := &caSigner{ca: e.serverCA}
	var notAfter atomic.Int64
	e.ctl.Renew = nil
	e.start(func(o *mtlsctl.Options) {
		o.Signer = signer
		o.Control.Renew = &configRenew
		o.OnCertificate = func(_ string, na time.Time) { notAfter.Store(na.Unix()) }
	})
	first := notAfter.Load()
	deadline := time.Now().Add(15 * time.Second)
	for signer.calls.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("renewed %d times in 15s, want at least 2", signer.calls.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if notAfter.Load() <= first {
		t.Fatal("the not-after did not move forward")
	}
	resp, err := e.client(&e.controller).Get("https://" + e.addr + "/v1/status")
	if err != nil {
		t.Fatalf("after renewals: %v", err)
	}
	resp.Body.Close()
	if left := time.Until(resp.TLS.PeerCertificates[0].NotAfter); left <= 0 {
		t.Fatal("serving an expired certificate")
	}
}

// TestOpenSSLMadeCAs follows seed 004's openssl recipe: encrypted RSA CA
// keys, a server certificate and a usr_cert client certificate, all made
// by openssl; terminator serves and accepts them.
func TestOpenSSLMadeCAs(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is required (apt-get install openssl)")
	}
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("openssl", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	cnf := `[ req ]
distinguished_name = dn
prompt = no
[ dn ]
C = US
ST = Oregon
O = OpenStack
OU = Octavia
CN = example.org
[ v3_ca ]
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always,issuer
basicConstraints = critical, CA:true
keyUsage = critical, digitalSignature, cRLSign, keyCertSign
[ usr_cert ]
basicConstraints = CA:FALSE
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
keyUsage = critical, nonRepudiation, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth, emailProtection
[ server_cert ]
basicConstraints = CA:FALSE
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer:always
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:amp-1
`
	os.WriteFile(filepath.Join(dir, "openssl.cnf"), []byte(cnf), 0o600)
	for _, ca := range []string{"server", "client"} {
		run("genrsa", "-aes256", "-passout", "pass:foobar", "-out", ca+"-ca.key", "2048")
		run("req", "-config", "openssl.cnf", "-key", ca+"-ca.key", "-passin", "pass:foobar", "-new", "-x509", "-days", "7300", "-sha256", "-extensions", "v3_ca", "-subj", "/C=US/ST=Oregon/O=OpenStack/OU=Octavia/CN="+ca+"-ca", "-out", ca+"-ca.pem")
	}
	issue := func(name, ca, ext string) {
		run("genrsa", "-aes256", "-passout", "pass:foobar", "-out", name+".key", "2048")
		run("req", "-config", "openssl.cnf", "-new", "-sha256", "-key", name+".key", "-passin", "pass:foobar", "-subj", "/C=US/ST=Oregon/O=OpenStack/OU=Octavia/CN="+name, "-out", name+".csr")
		run("x509", "-req", "-in", name+".csr", "-CA", ca+"-ca.pem", "-CAkey", ca+"-ca.key", "-passin", "pass:foobar", "-CAcreateserial", "-days", "365", "-sha256", "-extfile", "openssl.cnf", "-extensions", ext, "-out", name+".pem")
	}
	issue("amp-1", "server", "server_cert")
	issue("controller", "client", "usr_cert")
	// As the seed does for Octavia's client_cert: an unencrypted cert-and-key file.
	run("rsa", "-in", "controller.key", "-passin", "pass:foobar", "-out", "controller.cert-and-key.pem")
	ck, _ := os.ReadFile(filepath.Join(dir, "controller.cert-and-key.pem"))
	cp, _ := os.ReadFile(filepath.Join(dir, "controller.pem"))
	os.WriteFile(filepath.Join(dir, "controller.cert-and-key.pem"), append(cp, ck...), 0o600)
	os.WriteFile(filepath.Join(dir, "amp-1.pass"), []byte("foobar\n"), 0o600)

	e := newEnv(t, func(e *env) {
		e.ctl.TLSContainerRef = "file://" + dir + "/amp-1.pem?key=" + dir + "/amp-1.key&passphrase_file=" + dir + "/amp-1.pass"
		e.ctl.ClientCARef = "file://" + dir + "/client-ca.pem"
		e.ctl.ClientCRLRef = ""
	})
	controller, err := tls.LoadX509KeyPair(filepath.Join(dir, "controller.cert-and-key.pem"), filepath.Join(dir, "controller.cert-and-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	serverCA, _ := os.ReadFile(filepath.Join(dir, "server-ca.pem"))
	roots := x509CertPool(serverCA)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "amp-1", Certificates: []tls.Certificate{controller}}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + e.addr + "/v1/status")
	if err != nil {
		t.Fatalf("openssl-made CAs and certificates were not accepted: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
