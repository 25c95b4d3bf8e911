package dataplane_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// TestHTTP1BodiesToH2Members: an HTTP/1.1 client's chunked upload reaches
// an h2c member whole (copied by the stream's own goroutine, as it
// arrives); a member that answers before reading the body ends the copy
// (the client's read is aborted) without leaking it, and the listener
// keeps serving the client.
func TestHTTP1BodiesToH2Members(t *testing.T) {
	tu.NoLeaks(t)
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	member := h2cMember(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/early" {
			w.WriteHeader(http.StatusRequestEntityTooLarge) // without reading
			return
		}
		sum := sha256.New()
		n, _ := io.Copy(sum, r.Body)
		fmt.Fprintf(w, "%d %x", n, sum.Sum(nil))
	}))
	h.mustApply(`
listeners:
  - {name: tls, protocol: TERMINATED_HTTPS, bind: "127.0.0.1:0", default_tls_container_ref: "file://{{dir}}/site.pem", default_pool: up}
pools:
  - {name: up, h2c: true, members: [` + member + `]}
`)
	client := h.client("site.example", false)
	url := "https://" + h.addr("127.0.0.1:0")
	body := bytes.Repeat([]byte("terminator "), 100_000) // 1.1 MB: beyond every window
	pr, pw := io.Pipe()
	go func() {
		for off := 0; off < len(body); off += 64 << 10 { // arrives in pieces
			_, _ = pw.Write(body[off:min(off+64<<10, len(body))])
		}
		pw.Close()
	}()
	res, err := client.Post(url+"/sum", "application/octet-stream", pr) // chunked: unknown length
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if want := fmt.Sprintf("%d %x", len(body), sha256.Sum256(body)); res.ProtoMajor != 1 || string(got) != want {
		t.Fatalf("upload: %s %q, want %q", res.Proto, got, want)
	}

	// The member answers at once; the client is still sending, and goes
	// on only once it has the answer (or, should the answer never come,
	// after ten seconds, so that the test fails rather than hangs).
	stall := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(stall) }) }
	timer := time.AfterFunc(10*time.Second, release)
	defer timer.Stop()
	pr, pw = io.Pipe()
	go func() {
		_, _ = pw.Write([]byte("first piece"))
		<-stall
		pw.CloseWithError(errors.New("client gave up"))
	}()
	start := time.Now()
	res, err = client.Post(url+"/early", "application/octet-stream", pr)
	release()
	if err != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("early answer: %v after %s", err, time.Since(start))
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("early answer: %d", res.StatusCode)
	}
	res, err = client.Get(url + "/sum")
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(string(got), "0 ") {
		t.Fatalf("after an early answer: %d %q", res.StatusCode, got)
	}
}
