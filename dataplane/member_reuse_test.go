package dataplane_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
)

// TestMemberOverrunNeverReachesAnotherClient: a member that sends more
// than it framed must not have its surplus bytes handed to the next
// client as that client's response (response-queue poisoning). The
// connection is reused only when the exchange ended exactly at a message
// boundary with nothing buffered and nothing pending on the socket.
func TestMemberOverrunNeverReachesAnotherClient(t *testing.T) {
	const poison = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON"
	overruns := []struct {
		name   string
		method string
		first  string // the member's answer to the first request, /alice
	}{
		{"second response after a Content-Length body", "GET",
			"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n/alice" + poison},
		{"body to HEAD", "HEAD",
			"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n/alice" + poison},
		{"bytes after the final chunk", "GET",
			"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n/alice\r\n0\r\n\r\n" + poison},
		{"second response after a large body in the same TLS record", "GET",
			"HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n" + strings.Repeat("a", 300000) + poison},
		{"bytes arriving after the response, while idle", "GET",
			"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n/alice" + pause + poison},
		{"bytes arriving after a HEAD response, while idle", "HEAD",
			"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n" + pause + "/alice" + poison},
	}
	memberCA := tu.CA(t, "member CA")
	mc, mk, err := memberCA.Issue(pki.Request{CommonName: "member", IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, Usage: pki.ServerAuth})
	if err != nil {
		t.Fatal(err)
	}
	memberTLS := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{mc.Raw}, PrivateKey: mk}}}
	for _, listenerTLS := range []bool{true, false} {
		for _, tlsMember := range []bool{false, true} {
			for _, tc := range overruns {
				name := fmt.Sprintf("%s/listener-tls=%v/member-tls=%v", tc.name, listenerTLS, tlsMember)
				t.Run(name, func(t *testing.T) {
					var cfg *tls.Config
					if tlsMember {
						cfg = memberTLS
					}
					m := newRawTLSMember(t, cfg, func(n int, r *http.Request) (string, bool) {
						if n == 0 {
							return tc.first, false
						}
						return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(r.URL.Path), r.URL.Path), false
					})
					checkNoPoison(t, m, tc.method, listenerTLS, tlsMember)
				})
			}
		}
	}
}

// checkNoPoison sends alice's request, then bob's twice from another
// client, and checks that each gets the answer to its own request.
func checkNoPoison(t *testing.T, m *rawMember, firstMethod string, listenerTLS, tlsMember bool) {
	t.Helper()
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	pool := ""
	if tlsMember {
		pool = "    tls_enabled: true\n"
	}
	cfg := oneListener("", m.spec()) + pool
	scheme := "https"
	if !listenerTLS {
		cfg = strings.Replace(cfg, "protocol: TERMINATED_HTTPS", "protocol: HTTP", 1)
		cfg = strings.Replace(cfg, "default_tls_container_ref: file://{{dir}}/site.pem", "", 1)
		scheme = "http"
	}
	h.mustApply(cfg)
	base := scheme + "://" + h.addr("127.0.0.1:0")
	alice, bob := h.client("site.example", false), h.client("site.example", false)

	resp, err := alice.Do(newRequest(t, firstMethod, base+"/alice", nil))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || (firstMethod == "GET" && strings.Contains(string(body), "POISON")) {
		t.Fatalf("alice: %d %q", resp.StatusCode, body)
	}
	time.Sleep(150 * time.Millisecond) // late surplus bytes have arrived on the idle connection
	for i := range 2 {
		resp, err := bob.Get(base + "/bob")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "/bob" {
			t.Fatalf("bob's request %d got %d %q: another exchange's bytes", i, resp.StatusCode, body)
		}
	}
	if got := m.conns.Load(); got != 2 {
		t.Fatalf("member connections: %d; want 2 (the overrun one dropped, the clean one reused)", got)
	}
}
