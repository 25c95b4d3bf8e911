package dataplane_test

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/terminator-proxy/terminator/config"
	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// TestSessionTicketLifetime: a ticket resumes its session only within
// tls.session_ticket_lifetime of the full handshake that made it (default
// haproxy's 300 s, crypto/tls alone allows 7 days), on TLS 1.2 and 1.3.
func TestSessionTicketLifetime(t *testing.T) {
	if config.DefaultSessionTicketLifetime != 300000 {
		t.Fatalf("default lifetime %d ms; haproxy's tune.ssl.lifetime is 300 s", config.DefaultSessionTicketLifetime)
	}
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	h.mustApply("tls: {session_ticket_lifetime: 1000}\n" + oneListener("", "{address: 127.0.0.1, protocol_port: 9}"))
	addr := h.addr("127.0.0.1:0")
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			cache := tls.NewLRUClientSessionCache(8)
			resumed := func() bool {
				t.Helper()
				conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: tu.Pool(h.ca), ServerName: "site.example",
					ClientSessionCache: cache, MinVersion: version, MaxVersion: version})
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond)) // TLS 1.3 tickets come after the handshake
				_, _ = conn.Read(make([]byte, 1))
				return conn.ConnectionState().DidResume
			}
			if resumed() {
				t.Fatal("first connection resumed")
			}
			if !resumed() {
				t.Fatal("no resumption within the lifetime")
			}
			time.Sleep(1500 * time.Millisecond) // past the 1 s lifetime
			if resumed() {
				t.Fatal("a ticket older than the lifetime resumed its session")
			}
			if !resumed() {
				t.Fatal("the new full handshake's ticket does not resume")
			}
		})
	}
}
