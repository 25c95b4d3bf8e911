// Package testutil holds helpers shared by terminator's tests: certificate
// fixtures on disk, an echo backend, TLS clients and a goroutine-leak check.
// Only _test.go files import it.
package testutil

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/terminator-proxy/terminator/pki"
)

// CA returns a new ECDSA test CA.
func CA(t testing.TB, cn string) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(cn, pki.ECDSAP256, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// Leaf issues a server certificate for names from ca.
func Leaf(t testing.TB, ca *pki.CA, kt pki.KeyType, names ...string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	c, k, err := ca.Issue(pki.Request{CommonName: names[0], DNSNames: names, Usage: pki.ServerAuth, KeyType: kt})
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// KeyPEM encodes k or fails the test.
func KeyPEM(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	b, err := pki.KeyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// WriteFile writes data to dir/name (0600) and returns the path.
func WriteFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// WriteAtomic replaces path by writing a temporary file and renaming it,
// as editors and config-management tools do.
func WriteAtomic(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// Bundle issues a certificate for names and writes it, with its key, as
// one PEM file dir/file. It returns the file:// reference and the cert.
func Bundle(t testing.TB, dir, file string, ca *pki.CA, names ...string) (string, *x509.Certificate) {
	t.Helper()
	c, k := Leaf(t, ca, pki.ECDSAP256, names...)
	p := WriteFile(t, dir, file, append(pki.CertPEM(c), KeyPEM(t, k)...))
	return "file://" + p, c
}

// Echo is a backend that answers with the request it got, as JSON.
type Echo struct {
	Method string
	Host   string
	Path   string
	Header http.Header
	Body   int // bytes of request body read
}

// EchoBackend starts a backend that reports what it received.
func EchoBackend(t testing.TB) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(Echo{Method: r.Method, Host: r.Host, Path: r.URL.Path, Header: r.Header, Body: int(n)})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// HostPort splits a backend URL's address.
func HostPort(t testing.TB, rawURL string) (string, string) {
	t.Helper()
	host, port, err := net.SplitHostPort(strings.TrimPrefix(rawURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// Client returns an HTTPS client trusting roots that presents serverName.
// It keeps connections alive; set h2 to negotiate HTTP/2.
func Client(roots *x509.CertPool, serverName string, h2 bool, certs ...tls.Certificate) *http.Client {
	tc := &tls.Config{RootCAs: roots, ServerName: serverName, Certificates: certs}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: h2, MaxIdleConnsPerHost: 16}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// Pool returns a cert pool of cas.
func Pool(cas ...*pki.CA) *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range cas {
		p.AddCert(ca.Cert)
	}
	return p
}

// NoLeaks fails the test if, once it has cleaned up, more goroutines run
// than before it started. Register it first so it runs last.
func NoLeaks(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
