package vault_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/terminator-proxy/terminator/backends/vault"
	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/dataplane"
	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/metrics"
	"github.com/terminator-proxy/terminator/pki"
)

type status struct {
	mu       sync.Mutex
	errs     map[string]error
	notAfter map[string][]time.Time
}

func (s *status) record(ref string, err error, _, notAfter time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs[ref] = err
	if !notAfter.IsZero() {
		s.notAfter[ref] = append(s.notAfter[ref], notAfter)
	}
}

func (s *status) err(ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errs[ref]
}

// newManager logs in with AppRole (the least-privileged path) unless auth
// is given, and runs the manager until the test ends.
func newManager(t *testing.T, auth *vault.Auth) (*vault.Manager, *status) {
	t.Helper()
	tu.NoLeaks(t)
	t.Cleanup(devVault.http.CloseIdleConnections)
	if auth == nil {
		roleID, secretID := approleCreds(t)
		auth = &vault.Auth{Method: "approle", RoleID: roleID, SecretID: secretID}
	}
	st := &status{errs: map[string]error{}, notAfter: map[string][]time.Time{}}
	m, err := vault.New(context.Background(), vault.Options{
		Address: "http://" + devVault.addr, Auth: *auth, Refresh: 200 * time.Millisecond, Timeout: time.Second,
		Logger: slog.New(slog.DiscardHandler), OnStatus: st.record,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return m, st
}

func kvPut(t *testing.T, path string, data map[string]any) {
	t.Helper()
	if _, err := devVault.root.KVv2("secret").Put(context.Background(), path, data); err != nil {
		t.Fatal(err)
	}
}

func pemBundle(t *testing.T, ca *pki.CA, names ...string) (map[string]any, *x509.Certificate) {
	t.Helper()
	inter, _ := ca.NewIntermediate("vault test intermediate", pki.ECDSAP256)
	c, k := tu.Leaf(t, inter, pki.ECDSAP256, names...)
	return map[string]any{"certificate": string(pki.CertPEM(c)), "private_key": string(tu.KeyPEM(t, k)), "ca_chain": string(pki.CertPEM(inter.Cert))}, c
}

// serve runs a data plane with one TERMINATED_HTTPS listener whose
// certificates are refs, in front of an echo backend, reloading on the
// manager's changes.
func serve(t *testing.T, m *vault.Manager, refs ...string) (string, *dataplane.Plane) {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(backend.Close)
	_, port := tu.HostPort(t, backend.URL)
	reg := certs.NewRegistry()
	reg.Register("vault", m)
	reg.Register("vault-pki", m)
	plane := dataplane.New(dataplane.Options{Certs: reg, Logger: slog.New(slog.DiscardHandler), Metrics: metrics.New()})
	yaml := "listeners:\n  - name: web\n    protocol: TERMINATED_HTTPS\n    bind: 127.0.0.1:0\n    default_tls_container_ref: \"" + refs[0] + "\"\n"
	if len(refs) > 1 {
		yaml += "    sni_container_refs: [\"" + strings.Join(refs[1:], "\", \"") + "\"]\n"
	}
	yaml += "    default_pool: app\npools:\n  - {name: app, members: [{address: 127.0.0.1, protocol_port: " + port + "}]}\n"
	cfg, _, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := plane.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		plane.Run(ctx, func() (*config.Config, error) { return cfg, nil }, nil, []certs.Watcher{m})
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done; _ = plane.Shutdown(context.Background()) })
	return plane.Addr("127.0.0.1:0").String(), plane
}

func served(t *testing.T, addr, name string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	c, err := tlsLeaf(addr, name, roots)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestKVBundleNewVersionUnderLoad(t *testing.T) {
	m, _ := newManager(t, nil)
	ca := tu.CA(t, "kv CA")
	data, first := pemBundle(t, ca, "shop.example")
	kvPut(t, "tls/shop", data)
	other, _ := pemBundle(t, ca, "other.example")
	kvPut(t, "tls/other", other)
	addr, _ := serve(t, m, "vault:secret/data/tls/other", "vault:secret/data/tls/shop")
	roots := tu.Pool(ca)
	if got := served(t, addr, "shop.example", roots); !got.Equal(first) {
		t.Fatal("the KV bundle is not served by SNI")
	}
	l := tu.StartLoad(roots, "https://"+addr+"/", "shop.example", 3, 3)
	for range 3 {
		next, c := pemBundle(t, ca, "shop.example")
		kvPut(t, "tls/shop", next)
		waitFor(t, 10*time.Second, "the new KV version to be served", func() bool {
			got, err := tlsLeaf(addr, "shop.example", roots)
			return err == nil && got.Equal(c)
		})
	}
	l.Finish(t)
}

func TestKVv1PKCS12AndFieldOptions(t *testing.T) {
	m, _ := newManager(t, nil)
	ca := tu.CA(t, "p12 CA")
	c, k := tu.Leaf(t, ca, pki.ECDSAP256, "p12.example")
	p12, _ := pkcs12.Modern.Encode(k, c, []*x509.Certificate{ca.Cert}, "pw")
	if _, err := devVault.root.Logical().Write("kv1/tls/p12", map[string]any{"bundle": base64.StdEncoding.EncodeToString(p12), "pass": "pw"}); err != nil {
		t.Fatal(err)
	}
	b, err := m.Bundle(context.Background(), "vault:kv1/tls/p12?pkcs12=bundle&passphrase=pass")
	if err != nil {
		t.Fatal(err)
	}
	if !b.Leaf().Equal(c) {
		t.Fatal("wrong certificate from the PKCS#12 field")
	}
	kvPut(t, "tls/custom", map[string]any{"crt": string(pki.CertPEM(c)), "k": string(tu.KeyPEM(t, k))})
	if _, err := m.Bundle(context.Background(), "vault:secret/data/tls/custom?cert=crt&key=k"); err != nil {
		t.Fatalf("custom field names: %v", err)
	}
	kvPut(t, "tls/clients", map[string]any{"ca": string(pki.CertPEM(ca.Cert))})
	if sec, err := m.Secret(context.Background(), "vault:secret/data/tls/clients?field=ca"); err != nil || !strings.Contains(string(sec), "BEGIN CERTIFICATE") {
		t.Fatalf("CA bundle from KV: %v", err)
	}
	if sec, err := m.Secret(context.Background(), "vault-pki:pki/ca_chain"); err != nil || !strings.Contains(string(sec), "BEGIN CERTIFICATE") {
		t.Fatalf("CA chain from PKI: %v %q", err, sec)
	}
	if sec, err := m.Secret(context.Background(), "vault-pki:pki/crl"); err != nil || !strings.Contains(string(sec), "X509 CRL") {
		t.Fatalf("CRL from PKI: %v %q", err, sec)
	}
}

func TestErrorsNameTheRef(t *testing.T) {
	m, _ := newManager(t, nil)
	ca := tu.CA(t, "err CA")
	c, _ := tu.Leaf(t, ca, pki.ECDSAP256, "x.example")
	kvPut(t, "tls/nokey", map[string]any{"certificate": string(pki.CertPEM(c))})
	kvPut(t, "tls/badpem", map[string]any{"certificate": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", "private_key": "x"})
	kvPut(t, "tls/badp12", map[string]any{"pkcs12": base64.StdEncoding.EncodeToString([]byte("not pkcs12"))})
	kvPut(t, "denied/x", map[string]any{"certificate": "x"})
	cases := []struct {
		ref  string
		want error
		text string
	}{
		{"vault:secret/data/denied/x", certs.ErrAccessDenied, "grant terminator's policy read"},
		{"vault:secret/data/tls/missing", certs.ErrNotFound, "secret/data/tls/missing"},
		{"vault:secret/data/tls/nokey", nil, "no private key field"},
		{"vault:secret/data/tls/badpem", certs.ErrUnreadable, "PEM block 1"},
		{"vault:secret/data/tls/badp12", certs.ErrUnreadable, "PKCS#12"},
		{"vault-pki:pki/issue/nope?common_name=a.example", certs.ErrAccessDenied, "pki/sign/nope"},
	}
	for _, tc := range cases {
		_, err := m.Bundle(context.Background(), tc.ref)
		var re *certs.RefError
		if err == nil || !errors.As(err, &re) || re.Ref != tc.ref {
			t.Fatalf("%s: want an error naming the ref, got %v", tc.ref, err)
		}
		if (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.text) {
			t.Fatalf("%s: got %q, want %v containing %q", tc.ref, err, tc.want, tc.text)
		}
		if strings.Contains(err.Error(), "hvs.") || strings.Contains(err.Error(), "s.") && strings.Contains(err.Error(), "token") {
			t.Fatalf("%s: the error may carry a token: %q", tc.ref, err)
		}
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func pemFixture(t *testing.T) (string, map[string]any) {
	ca := tu.CA(t, "inspect CA")
	data, _ := pemBundle(t, ca, "inspect.example")
	return "vault test intermediate", data
}
