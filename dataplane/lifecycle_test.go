package dataplane_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/dataplane"
	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/metrics"
	"github.com/terminator-proxy/terminator/pki"
)

func TestDrainFinishesInFlight(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	started := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(500 * time.Millisecond)
		_, _ = w.Write([]byte("finished"))
	}))
	defer backend.Close()
	h.mustApply(oneListener("", member(t, backend.URL)))
	addr := h.addr("127.0.0.1:0")
	c := h.client("site.example", false)
	result := make(chan string, 1)
	go func() {
		resp, err := c.Get("https://" + addr + "/")
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.plane.Shutdown(ctx) }()
	time.Sleep(100 * time.Millisecond)
	if _, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: tu.Pool(h.ca), ServerName: "site.example"}); err == nil {
		t.Error("a new connection was accepted while draining")
	}
	if got := <-result; got != "finished" {
		t.Fatalf("in-flight request: %q", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestDrainTimeoutIsBounded(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer backend.Close()
	defer close(release)
	h.mustApply(oneListener("", member(t, backend.URL)))
	c := h.client("site.example", false)
	go func() {
		if resp, err := c.Get("https://" + h.addr("127.0.0.1:0") + "/"); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := h.plane.Shutdown(ctx)
	if err == nil {
		t.Fatal("shutdown reported a clean drain although a request was cut")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %v with a 300ms drain timeout", d)
	}
}

func TestExpiredCertificateServedWithWarning(t *testing.T) {
	h := newHarness(t)
	c, k, err := h.ca.Issue(pki.Request{CommonName: "old.example", DNSNames: []string{"old.example"}, NotBefore: time.Now().Add(-72 * time.Hour), Validity: 24 * time.Hour})
	must(t, err)
	tu.WriteFile(t, h.dir, "site.pem", append(pki.CertPEM(c), tu.KeyPEM(t, k)...))
	h.mustApply(oneListener("", "{address: 127.0.0.1, protocol_port: 9}"))
	snap := h.plane.Current()
	if len(snap.Warnings) != 1 || !strings.Contains(snap.Warnings[0].String(), "listeners[0].default_tls_container_ref: certificate ref file://") || !strings.Contains(snap.Warnings[0].String(), "expired") {
		t.Fatalf("want a warning naming the expired certificate, got %v", snap.Warnings)
	}
	ref := "file://" + h.dir + "/site.pem"
	if v := gathered(t, h.mx, "terminator_certificate_outside_validity", "listener", "web", "ref", ref); v != 1 {
		t.Fatalf("terminator_certificate_outside_validity = %v, want 1", v)
	}
	if v := gathered(t, h.mx, "terminator_certificate_not_after_seconds", "listener", "web", "name", "old.example", "ref", ref); v != float64(c.NotAfter.Unix()) {
		t.Fatalf("not-after metric = %v", v)
	}
	conn, err := tls.Dial("tcp", h.addr("127.0.0.1:0"), &tls.Config{InsecureSkipVerify: true, ServerName: "old.example"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if !conn.ConnectionState().PeerCertificates[0].Equal(c) {
		t.Fatal("the expired certificate is not served")
	}
}

func TestHandshakeMetrics(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	clientCA := tu.CA(t, "clients")
	tu.WriteFile(t, h.dir, "clients.pem", pki.CertPEM(clientCA.Cert))
	h.mustApply(oneListener(`    client_authentication: MANDATORY
    client_ca_tls_container_ref: file://{{dir}}/clients.pem
    strict_sni: true`, "{address: 127.0.0.1, protocol_port: 9}"))
	addr := h.addr("127.0.0.1:0")
	cc, ck, _ := clientCA.Issue(pki.Request{CommonName: "c", Usage: pki.ClientAuth})
	good := tls.Certificate{Certificate: [][]byte{cc.Raw}, PrivateKey: ck}
	dial := func(name string, cert *tls.Certificate) error {
		cfg := &tls.Config{RootCAs: tu.Pool(h.ca), ServerName: name}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		conn, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		// TLS 1.3 client auth fails after the client's Finished: read to see it.
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
			return nil
		}
		return err
	}
	if err := dial("site.example", &good); err != nil {
		t.Fatalf("good client: %v", err)
	}
	if err := dial("site.example", nil); err == nil {
		t.Fatal("MANDATORY let a client without certificate in")
	}
	if err := dial("unknown.example", &good); err == nil {
		t.Fatal("strict SNI let an unknown name in")
	}
	waitMetric := func(what string, v func() float64) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for v() != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("%s = %v, want 1", what, v())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitMetric("handshakes TLS 1.3", func() float64 { return promtest.ToFloat64(h.mx.Handshakes.WithLabelValues("web", "TLS 1.3", "false")) })
	waitMetric("client_certificate_missing failures", func() float64 {
		return promtest.ToFloat64(h.mx.HandshakeFailures.WithLabelValues("web", "client_certificate_missing"))
	})
	waitMetric("unknown_server_name failures", func() float64 {
		return promtest.ToFloat64(h.mx.HandshakeFailures.WithLabelValues("web", "unknown_server_name"))
	})
}

// TestSessionTickets: sessions resume across a reload, and two planes that
// share a ticket-key file resume each other's sessions.
func TestSessionTickets(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	tu.WriteFile(t, h.dir, "tickets", []byte("# shared\n"+base64.StdEncoding.EncodeToString(key)+"\n"))
	yaml := "tls: {session_ticket_keys_file: {{dir}}/tickets}\n" + oneListener("", "{address: 127.0.0.1, protocol_port: 9}")
	h.mustApply(yaml)
	addrA := h.addr("127.0.0.1:0")

	// A second, independent plane over the same files.
	reg := certs.NewRegistry()
	reg.Register("file", h.files)
	b := dataplane.New(dataplane.Options{Certs: reg, Logger: slog.New(slog.DiscardHandler), Metrics: metrics.New()})
	must(t, b.Apply(context.Background(), h.config(yaml)))
	defer func() { _ = b.Shutdown(context.Background()) }()
	addrB := b.Addr("127.0.0.1:0").String()

	cache := tls.NewLRUClientSessionCache(8)
	resumed := func(addr string) bool {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: tu.Pool(h.ca), ServerName: "site.example", ClientSessionCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// TLS 1.3 tickets arrive after the handshake: read briefly to get them.
		_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, _ = conn.Read(make([]byte, 1))
		return conn.ConnectionState().DidResume
	}
	if resumed(addrA) {
		t.Fatal("first connection resumed from nothing")
	}
	if !resumed(addrA) {
		t.Fatal("no resumption on the same instance")
	}
	h.mustApply(strings.Replace(yaml, "default_pool: app", "default_pool: app\n    timeout_client_data: 12345", 1))
	if !resumed(addrA) {
		t.Fatal("sessions did not survive a reload")
	}
	if !resumed(addrB) {
		t.Fatal("an instance sharing the ticket-key file did not resume the session")
	}
	if v := promtest.ToFloat64(h.mx.Handshakes.WithLabelValues("web", "TLS 1.3", "true")); v < 2 {
		t.Fatalf("resumed handshakes metric = %v", v)
	}
}

func TestParseTicketKeys(t *testing.T) {
	k := base64.StdEncoding.EncodeToString(make([]byte, 32))
	keys, err := dataplane.ParseTicketKeys([]byte(k + "\n\n# old\n" + k + "\n"))
	if err != nil || len(keys) != 2 {
		t.Fatalf("got %d keys, %v", len(keys), err)
	}
	for _, bad := range []string{"", "# only a comment", "c2hvcnQ=", "!!!"} {
		if _, err := dataplane.ParseTicketKeys([]byte(bad)); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
}

// TestShutdownBoundsOldGenerations: a reload that changes the client
// timeout leaves the old server draining a long request; shutdown must
// still end within its own deadline.
func TestShutdownBoundsOldGenerations(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{}, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer backend.Close()
	h.mustApply(oneListener("    timeout_client_data: 20000", member(t, backend.URL)))
	c := h.client("site.example", false)
	go func() {
		if resp, err := c.Get("https://" + h.addr("127.0.0.1:0") + "/"); err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	h.mustApply(oneListener("    timeout_client_data: 30000", member(t, backend.URL))) // a new server generation
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_ = h.plane.Shutdown(ctx)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %v with a 300ms deadline: an old generation was not bounded", d)
	}
}

// gathered returns the value of the one gauge series named name whose
// labels are the given name/value pairs, failing when there is not exactly
// one.
func gathered(t *testing.T, mx *metrics.Metrics, name string, labels ...string) float64 {
	t.Helper()
	families, err := mx.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found []float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if got[labels[i]] != labels[i+1] {
					continue series
				}
			}
			found = append(found, m.GetGauge().GetValue())
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d series, want 1", name, labels, len(found))
	}
	return found[0]
}
