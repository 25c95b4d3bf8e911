package dataplane_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/terminator-proxy/terminator/config"
	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
)

// waitServed polls fresh handshakes until want is served.
func waitServed(t *testing.T, addr, name string, roots *x509.CertPool, want *x509.Certificate) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := servedCert(addr, name, roots)
		if err == nil && got.Equal(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("new certificate not served within 5s (last error %v)", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReloadUnderLoad replaces the served certificate 60 times while a
// client loop runs: half by atomic rename, half by Kubernetes-style ..data
// symlink swaps. Every request must succeed and every new certificate must be
// served.
func TestReloadUnderLoad(t *testing.T) {
	h := newHarness(t)
	backend := tu.EchoBackend(t)
	// site.pem is a symlink through ..data, as a mounted Secret is.
	gen := func(i int) *x509.Certificate {
		sub := filepath.Join(h.dir, fmt.Sprintf("..gen%d", i))
		if err := os.Mkdir(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		_, c := tu.Bundle(t, sub, "tls.pem", h.ca, "site.example")
		return c
	}
	gen(0)
	must(t, os.Symlink("..gen0", filepath.Join(h.dir, "..data")))
	must(t, os.Symlink("..data/tls.pem", filepath.Join(h.dir, "k8s.pem")))
	h.cert("plain.pem", "plain.example")
	yaml := oneListener("    sni_container_refs: [file://{{dir}}/plain.pem]", member(t, backend.URL))
	yaml = replaceOnce(yaml, "file://{{dir}}/site.pem", "file://{{dir}}/k8s.pem")
	cfg := h.config(yaml)
	if err := h.plane.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	h.run(func() (*config.Config, error) { return cfg, nil }, make(chan struct{}))
	addr := h.addr("127.0.0.1:0")
	roots := tu.Pool(h.ca)

	load := tu.StartLoad(tu.Pool(h.ca), "https://"+addr+"/", "site.example", 4, 5)
	loadPlain := tu.StartLoad(tu.Pool(h.ca), "https://"+addr+"/", "plain.example", 2, 5)
	for i := 1; i <= 60; i++ {
		if i%2 == 0 {
			c := gen(i)
			link := filepath.Join(h.dir, "..data_tmp")
			must(t, os.Symlink(fmt.Sprintf("..gen%d", i), link))
			must(t, os.Rename(link, filepath.Join(h.dir, "..data")))
			waitServed(t, addr, "site.example", roots, c)
		} else {
			c2, k2 := tu.Leaf(t, h.ca, pki.ECDSAP256, "plain.example")
			tu.WriteAtomic(t, filepath.Join(h.dir, "plain.pem"), append(pki.CertPEM(c2), tu.KeyPEM(t, k2)...))
			waitServed(t, addr, "plain.example", roots, c2)
		}
	}
	load.Finish(t)
	loadPlain.Finish(t)
	if got := promtest.ToFloat64(h.mx.Reloads.WithLabelValues("success")); got < 60 {
		t.Fatalf("%v successful reloads recorded, want at least 60", got)
	}
}

// TestInvalidReloadKeepsServing breaks the certificate file, then fixes it.
func TestInvalidReloadKeepsServing(t *testing.T) {
	h := newHarness(t)
	backend := tu.EchoBackend(t)
	old := h.cert("site.pem", "site.example")
	cfg := h.config(oneListener("", member(t, backend.URL)))
	must(t, h.plane.Apply(context.Background(), cfg))
	h.run(func() (*config.Config, error) { return cfg, nil }, make(chan struct{}))
	addr := h.addr("127.0.0.1:0")
	roots := tu.Pool(h.ca)
	load := tu.StartLoad(tu.Pool(h.ca), "https://"+addr+"/", "site.example", 2, 5)

	other := tu.CA(t, "other")
	wrongKey, _ := tu.Leaf(t, h.ca, pki.ECDSAP256, "site.example")
	_, foreignKey := tu.Leaf(t, other, pki.ECDSAP256, "x")
	for name, data := range map[string][]byte{
		"garbage":   []byte("not a certificate"),
		"wrong key": append(pki.CertPEM(wrongKey), tu.KeyPEM(t, foreignKey)...),
		"no key":    pki.CertPEM(wrongKey),
	} {
		tu.WriteAtomic(t, filepath.Join(h.dir, "site.pem"), data)
		deadline := time.Now().Add(5 * time.Second)
		for promtest.ToFloat64(h.mx.ReloadFailing) != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the failed reload was not exported", name)
			}
			time.Sleep(10 * time.Millisecond)
		}
		got, err := servedCert(addr, "site.example", roots)
		if err != nil || !got.Equal(old) {
			t.Fatalf("%s: the old certificate stopped being served: %v", name, err)
		}
		// Restore so the next bad write is a change again.
		fixed := h.cert("site.pem", "site.example")
		waitServed(t, addr, "site.example", roots, fixed)
		old = fixed
		if promtest.ToFloat64(h.mx.ReloadFailing) != 0 {
			t.Fatalf("%s: reload_failing still set after a good reload", name)
		}
	}
	load.Finish(t)
}

// TestFailedApplyChangesNothing: a config whose second listener cannot
// bind, or whose certificate is missing, leaves the running one untouched.
func TestFailedApplyChangesNothing(t *testing.T) {
	h := newHarness(t)
	backend := tu.EchoBackend(t)
	h.cert("site.pem", "site.example")
	good := oneListener("", member(t, backend.URL))
	h.mustApply(good)
	addr := h.addr("127.0.0.1:0")
	before := h.plane.Current()

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := h.config(fmt.Sprintf(`
listeners:
  - {name: web, protocol: TERMINATED_HTTPS, bind: 127.0.0.1:0, default_tls_container_ref: "file://{{dir}}/site.pem", default_pool: app, timeout_member_data: 1234}
  - {name: second, protocol: HTTP, bind: %q, default_pool: app}
pools:
  - {name: app, members: [%s]}
`, busy.Addr().String(), member(t, backend.URL)))
	err = h.plane.Apply(context.Background(), cfg)
	if err == nil || !errorsContains(err, "binding") {
		t.Fatalf("apply with a busy port: %v", err)
	}
	missing := h.config(`
listeners:
  - {name: web, protocol: TERMINATED_HTTPS, bind: 127.0.0.1:0, default_tls_container_ref: "file://{{dir}}/missing.pem"}
`)
	err = h.plane.Apply(context.Background(), missing)
	if err == nil || !errorsContains(err, "listeners[0].default_tls_container_ref: certificate ref file://") {
		t.Fatalf("apply with a missing certificate: %v", err)
	}
	if h.plane.Current() != before {
		t.Fatal("a failed apply replaced the snapshot")
	}
	resp, err := h.client("site.example", false).Get("https://" + addr + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the old listener stopped serving: %v", err)
	}
	resp.Body.Close()
}

// TestManyReloadsDoNotLeak applies 1,000 alternating configurations with
// traffic in between and checks goroutines (NoLeaks, at cleanup) and heap.
func TestManyReloadsDoNotLeak(t *testing.T) {
	h := newHarness(t)
	backend := tu.EchoBackend(t)
	h.cert("a.pem", "site.example")
	h.cert("b.pem", "site.example")
	m := member(t, backend.URL)
	cfgs := []*config.Config{
		h.config(replaceOnce(oneListener("    timeout_client_data: 20000", m), "site.pem", "a.pem")),
		h.config(replaceOnce(oneListener("    timeout_client_data: 30000", m), "site.pem", "b.pem")),
	}
	c := h.client("site.example", false)
	addrOf := func() string { return h.addr("127.0.0.1:0") }
	var heapBefore uint64
	for i := range 1000 {
		must(t, h.plane.Apply(context.Background(), cfgs[i%2]))
		if i%50 == 0 {
			resp, err := c.Get("https://" + addrOf() + "/")
			if err != nil {
				t.Fatalf("reload %d: %v", i, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if i == 99 {
			heapBefore = heapInUse()
		}
	}
	c.CloseIdleConnections()
	growth := int64(heapInUse()) - int64(heapBefore)
	t.Logf("heap in use grew by %d KiB over 900 reloads", growth/1024)
	if growth > 8<<20 {
		t.Fatalf("heap grew by %d MiB over 900 reloads", growth>>20)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func errorsContains(err error, s string) bool { return contains(err.Error(), s) }
