package mtlsctl_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
)

func TestHandshakeMatrix(t *testing.T) {
	var revoked tls.Certificate
	e := newEnv(t, func(e *env) {
		revoked = issuePair(t, e.clientCA, pki.Request{CommonName: "revoked", Usage: pki.ClientAuth})
		crl, _ := e.clientCA.CRL([]*x509.Certificate{revoked.Leaf}, 0)
		tu.WriteFile(t, e.dir, "client-ca.crl", crl)
	})
	selfCA := tu.CA(t, "self")
	self := issuePair(t, selfCA, pki.Request{CommonName: "self", Usage: pki.ClientAuth})
	cases := []struct {
		name string
		cert *tls.Certificate
		ok   bool
	}{
		{"client-CA certificate", &e.controller, true},
		{"no certificate", nil, false},
		{"server-CA certificate", ptr(issuePair(t, e.serverCA, pki.Request{CommonName: "amp-2", Usage: pki.ServerAuth | pki.ClientAuth})), false},
		{"self-signed / unknown CA", &self, false},
		{"expired", ptr(issuePair(t, e.clientCA, pki.Request{CommonName: "old", Usage: pki.ClientAuth, NotBefore: time.Now().Add(-48 * time.Hour), Validity: time.Hour})), false},
		{"revoked", &revoked, false},
		{"wrong key usage (serverAuth only)", ptr(issuePair(t, e.clientCA, pki.Request{CommonName: "srv", Usage: pki.ServerAuth})), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.client(tc.cert).Get("https://" + e.addr + "/v1/status")
			if err == nil {
				resp.Body.Close()
			}
			if (err == nil && resp.StatusCode == 200) != tc.ok {
				t.Fatalf("err=%v, want accepted=%v", err, tc.ok)
			}
		})
	}
}

func TestAllowedClients(t *testing.T) {
	e := newEnv(t, func(e *env) { e.ctl.AllowedClients = []string{"octavia-controller"} })
	other := issuePair(t, e.clientCA, pki.Request{CommonName: "octavia-controller", Usage: pki.ClientAuth})
	if resp, err := e.client(&e.controller).Get("https://" + e.addr + "/v1/status"); err == nil {
		resp.Body.Close()
		t.Fatal("a client not in allowed_clients was accepted")
	}
	resp, err := e.client(&other).Get("https://" + e.addr + "/v1/status")
	if err != nil {
		t.Fatalf("allowed client refused: %v", err)
	}
	resp.Body.Close()
}

func ptr[T any](v T) *T { return &v }

func listenerJSON(name, bind, pool, certRef string) map[string]any {
	l := map[string]any{"name": name, "protocol": "HTTP", "bind": bind, "default_pool": pool}
	if certRef != "" {
		l["protocol"] = "TERMINATED_HTTPS"
		l["default_tls_container_ref"] = certRef
	}
	return l
}

func member(t *testing.T, url string) map[string]any {
	host, port := tu.HostPort(t, url)
	var p int
	fmt.Sscan(port, &p)
	return map[string]any{"address": host, "protocol_port": p}
}

// TestPushUnderLoad: listeners, pools, members and an uploaded certificate
// pushed through the API while a client loop runs against the data plane.
func TestPushUnderLoad(t *testing.T) {
	e := newEnv(t, nil)
	var hitsA, hitsB atomic.Int64
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hitsA.Add(1); io.WriteString(w, "a") }))
	defer a.Close()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hitsB.Add(1); io.WriteString(w, "b") }))
	defer b.Close()

	// A certificate uploaded through the API, then used by a listener.
	siteCA := tu.CA(t, "site CA")
	site := issuePair(t, siteCA, pki.Request{CommonName: "site.example", DNSNames: []string{"site.example"}, Usage: pki.ServerAuth})
	code, up, _ := e.call("PUT", "/v1/certificates/site", pemPair(t, site), nil)
	if code != 201 {
		t.Fatalf("upload: %d %v", code, up)
	}
	ref := up["ref"].(string)

	bind := freeAddr(t)
	code, body, _ := e.call("PUT", "/v1/config", map[string]any{
		"listeners": []any{listenerJSON("web", bind, "app", ref)},
		"pools":     []any{map[string]any{"name": "app", "members": []any{member(t, a.URL)}}},
	}, nil)
	if code != 200 {
		t.Fatalf("put config: %d %v", code, body)
	}
	client := tu.Client(tu.Pool(siteCA), "site.example", false)
	defer client.CloseIdleConnections()
	var failed, ok atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get("https://" + bind + "/")
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
					if err == nil {
						resp.Body.Close()
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok.Add(1)
			}
		}()
	}
	for i := range 20 {
		members := []any{member(t, a.URL)}
		if i%2 == 1 {
			members = []any{member(t, b.URL)}
		}
		code, body, _ := e.call("PUT", "/v1/pools/app/members", map[string]any{"members": members}, nil)
		if code != 200 {
			t.Fatalf("members put %d: %d %v", i, code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d requests ok, %d failed; member a got %d, b %d", ok.Load(), failed.Load(), hitsA.Load(), hitsB.Load())
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d requests failed while config was pushed", failed.Load())
	}
	if hitsA.Load() == 0 || hitsB.Load() == 0 {
		t.Fatal("member changes did not take effect")
	}
	code, certsOut, _ := e.call("GET", "/v1/certificates", nil, nil)
	if code != 200 || !strings.Contains(fmt.Sprint(certsOut["in_use"]), "site.example") {
		t.Fatalf("certificates in use: %v", certsOut)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t, nil)
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "a") }))
	defer a.Close()
	bind := freeAddr(t)
	code, _, hdr := e.call("PUT", "/v1/config", map[string]any{
		"listeners": []any{listenerJSON("web", bind, "app", "")},
		"pools":     []any{map[string]any{"name": "app", "members": []any{member(t, a.URL)}}},
	}, nil)
	if code != 200 {
		t.Fatal(code)
	}
	version := hdr.Get("ETag")

	// A transaction whose second edit breaks the first: nothing changes.
	_, txn, _ := e.call("POST", "/v1/transactions", nil, nil)
	id := txn["id"].(string)
	if c, b, _ := e.call("PUT", "/v1/transactions/"+id+"/pools/extra", map[string]any{"name": "extra", "members": []any{member(t, a.URL)}}, nil); c != 204 {
		t.Fatalf("stage: %d %v", c, b)
	}
	if c, _, _ := e.call("DELETE", "/v1/transactions/"+id+"/pools/app", nil, nil); c != 204 {
		t.Fatal("stage delete")
	}
	code, body, _ := e.call("POST", "/v1/transactions/"+id+"/commit", nil, nil)
	if code != 400 || !strings.Contains(fmt.Sprint(body), `listeners[0].default_pool`) {
		t.Fatalf("commit of an invalid transaction: %d %v", code, body)
	}
	// Bad certificate uploads: every reason reported, nothing stored.
	for name, data := range map[string][]byte{"garbage": []byte("junk"), "nokey": pki.CertPEM(e.controller.Leaf)} {
		code, body, _ := e.call("PUT", "/v1/certificates/"+name, data, nil)
		if code != 400 || body["error"] == nil {
			t.Fatalf("upload %s: %d %v", name, code, body)
		}
	}
	// Malformed JSON and unknown fields.
	if c, b, _ := e.call("PUT", "/v1/listeners/web", []byte(`{"name":"web","colour":"red"}`), nil); c != 400 || !strings.Contains(fmt.Sprint(b), "colour") {
		t.Fatalf("unknown field: %d %v", c, b)
	}
	// Internal paths never leak into errors.
	if c, b, _ := e.call("GET", "/v1/nothing", nil, nil); c != 404 || b["error"] == nil {
		t.Fatalf("unknown endpoint: %d %v", c, b)
	}
	_, _, hdr = e.call("GET", "/v1/config", nil, nil)
	if hdr.Get("ETag") != version {
		t.Fatalf("version moved from %s to %s after failed writes", version, hdr.Get("ETag"))
	}
	resp, err := http.Get("http://" + bind + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the data plane changed: %v", err)
	}
	resp.Body.Close()
}

func TestIfMatchConflicts(t *testing.T) {
	e := newEnv(t, nil)
	bind := freeAddr(t)
	_, _, hdr := e.call("PUT", "/v1/pools/app", map[string]any{"name": "app", "members": []any{map[string]any{"address": "127.0.0.1", "protocol_port": 9}}}, nil)
	v := hdr.Get("ETag")
	// Two writers that read the same version race; exactly one wins.
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _, _ = e.call("PUT", "/v1/listeners/web", listenerJSON("web", bind, "app", ""), map[string]string{"If-Match": v})
		}()
	}
	wg.Wait()
	if !(codes[0] == 200 && codes[1] == 412 || codes[0] == 412 && codes[1] == 200) {
		t.Fatalf("concurrent If-Match writers got %v, want one 200 and one 412", codes)
	}
	// A transaction staged before another commit cannot commit.
	_, txn, _ := e.call("POST", "/v1/transactions", nil, nil)
	id := txn["id"].(string)
	e.call("PUT", "/v1/transactions/"+id+"/pools/other", map[string]any{"name": "other"}, nil)
	if c, _, _ := e.call("DELETE", "/v1/listeners/web", nil, nil); c != 200 {
		t.Fatal("direct write")
	}
	if c, b, _ := e.call("POST", "/v1/transactions/"+id+"/commit", nil, nil); c != 409 {
		t.Fatalf("stale transaction commit: %d %v", c, b)
	}
}

func TestRestartRestoresState(t *testing.T) {
	e := newEnv(t, nil)
	bind := freeAddr(t)
	e.call("PUT", "/v1/pools/app", map[string]any{"name": "app", "members": []any{map[string]any{"address": "127.0.0.1", "protocol_port": 9}}}, nil)
	_, _, hdr := e.call("PUT", "/v1/listeners/web", listenerJSON("web", bind, "app", ""), nil)
	e.stop()
	e.start(nil)
	code, body, hdr2 := e.call("GET", "/v1/listeners/web", nil, nil)
	if code != 200 || body["bind"] != bind || hdr2.Get("ETag") != hdr.Get("ETag") {
		t.Fatalf("after restart: %d %v version %s (was %s)", code, body, hdr2.Get("ETag"), hdr.Get("ETag"))
	}
	resp, err := http.Get("http://" + bind + "/")
	if err != nil {
		t.Fatalf("the restored listener does not serve: %v", err)
	}
	resp.Body.Close()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
