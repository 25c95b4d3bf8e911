package mtlsctl_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/terminator-proxy/terminator/backends/file"
	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/mtlsctl"
	"github.com/terminator-proxy/terminator/pki"
)

// TestRevocationReachesOpenConnections: a controller revoked while its
// keep-alive connection is open loses access on its next request, as soon
// as the CRL file changes (watched, like the data plane's), not at the next
// periodic refresh (an hour here). Before the fix, the open connection kept
// working and the CRL was re-read only every 60 s.
func TestRevocationReachesOpenConnections(t *testing.T) {
	var (
		mu      sync.Mutex
		refused = map[string]int{}
	)
	e := newEnv(t, nil)
	e.stop()
	watcher, err := file.New(file.Options{Debounce: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.start(func(o *mtlsctl.Options) {
		o.TrustRefresh = time.Hour
		o.Trust, o.TrustWatcher = watcher, watcher
		o.OnClientRefused = func(reason string) { mu.Lock(); refused[reason]++; mu.Unlock() }
	})
	runWatcher(t, watcher)

	c := e.client(&e.controller)
	conns := 0
	c.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conns++
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	get := func() (int, error) {
		resp, err := c.Get("https://" + e.addr + "/v1/status")
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(); err != nil || code != 200 {
		t.Fatalf("before revocation: %d %v", code, err)
	}
	crl, err := e.clientCA.CRL([]*x509.Certificate{e.controller.Leaf}, 0)
	if err != nil {
		t.Fatal(err)
	}
	tu.WriteAtomic(t, e.dir+"/client-ca.crl", crl)
	deadline := time.Now().Add(3 * time.Second)
	for {
		code, err := get()
		if err == nil && code == http.StatusForbidden {
			break
		}
		if err == nil && code != 200 {
			t.Fatalf("after revocation: %d", code)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revoked controller still gets %d %v", code, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if conns != 1 {
		t.Fatalf("%d connections; the test means one kept-alive connection", conns)
	}
	// A new connection is refused at the handshake.
	if code, err := get(); err == nil && code == 200 {
		t.Fatal("a new connection of the revoked controller was accepted")
	}
	mu.Lock()
	defer mu.Unlock()
	if refused["revoked"] == 0 {
		t.Fatalf("refusals counted %v; want revoked", refused)
	}
}

// TestControlClientAlerts: refused controllers get the alert that says why,
// and every refusal is counted by reason.
func TestControlClientAlerts(t *testing.T) {
	var (
		mu      sync.Mutex
		refused = map[string]int{}
	)
	e := newEnv(t, nil)
	e.stop()
	e.start(func(o *mtlsctl.Options) {
		o.OnClientRefused = func(reason string) { mu.Lock(); refused[reason]++; mu.Unlock() }
	})
	stranger := issuePair(t, tu.CA(t, "stranger"), pki.Request{CommonName: "x", Usage: pki.ClientAuth})
	expired := issuePair(t, e.clientCA, pki.Request{CommonName: "old", Usage: pki.ClientAuth, NotBefore: time.Now().Add(-48 * time.Hour), Validity: time.Hour})
	for _, tc := range []struct {
		cert   tls.Certificate
		alert  string
		reason string
	}{{stranger, "unknown certificate authority", "unknown_ca"}, {expired, "expired certificate", "expired"}} {
		cfg := &tls.Config{RootCAs: tu.Pool(e.serverCA), ServerName: "amp-1",
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tc.cert, nil }}
		conn, err := tls.Dial("tcp", e.addr, cfg)
		if err == nil {
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tc.alert) {
			t.Errorf("%s: %v; want the alert %q", tc.reason, err, tc.alert)
		}
	}
	// The server counts a refusal once its side of the handshake has
	// failed, which under TLS 1.3 can be a moment after the client has
	// read the alert: wait for the count rather than race it.
	counted := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return refused["unknown_ca"] == 1 && refused["expired"] == 1
	}
	for deadline := time.Now().Add(2 * time.Second); !counted() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if refused["unknown_ca"] != 1 || refused["expired"] != 1 {
		t.Fatalf("refusals counted %v", refused)
	}
}

// runWatcher runs a file manager's watch loop until the test ends.
func runWatcher(t *testing.T, m *file.Manager) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}
