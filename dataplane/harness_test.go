package dataplane_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/terminator-proxy/terminator/backends/file"
	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/dataplane"
	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/metrics"
	"github.com/terminator-proxy/terminator/pki"
)

// harness runs a Plane with the real file manager over files in a temp dir.
type harness struct {
	t     testing.TB
	dir   string
	ca    *pki.CA
	plane *dataplane.Plane
	files *file.Manager
	mx    *metrics.Metrics
	stop  func()
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	tu.NoLeaks(t)
	return newBenchHarness(t)
}

// newBenchHarness is newHarness without the leak check, for benchmarks.
func newBenchHarness(t testing.TB) *harness {
	t.Helper()
	return newHarnessWith(t, nil)
}

// newHarnessWith lets mutate set plane options before the plane is made.
func newHarnessWith(t testing.TB, mutate func(*dataplane.Options)) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), ca: tu.CA(t, "test CA"), mx: metrics.New()}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var err error
	h.files, err = file.New(file.Options{Rescan: time.Second, Debounce: 20 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	reg := certs.NewRegistry()
	reg.Register("file", h.files)
	opts := dataplane.Options{Certs: reg, Logger: log, Metrics: h.mx, DrainTimeout: 5 * time.Second}
	if mutate != nil {
		mutate(&opts)
	}
	h.plane = dataplane.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.files.Run(ctx); close(done) }()
	h.stop = func() {
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = h.plane.Shutdown(sctx)
		cancel()
		<-done
	}
	t.Cleanup(h.stop)
	return h
}

// config parses a YAML config, with {{dir}} standing for the temp dir.
func (h *harness) config(yaml string) *config.Config {
	h.t.Helper()
	cfg, _, err := config.Parse([]byte(strings.ReplaceAll(yaml, "{{dir}}", h.dir)))
	if err != nil {
		h.t.Fatalf("config: %v", err)
	}
	return cfg
}

func (h *harness) apply(yaml string) error {
	h.t.Helper()
	return h.plane.Apply(context.Background(), h.config(yaml))
}

func (h *harness) mustApply(yaml string) {
	h.t.Helper()
	if err := h.apply(yaml); err != nil {
		h.t.Fatalf("apply: %v", err)
	}
}

// run starts plane.Run with watchers, as serve does, until the test ends.
func (h *harness) run(load func() (*config.Config, error), reload chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		h.plane.Run(ctx, load, reload, []certs.Watcher{h.files})
		close(done)
	}()
	h.t.Cleanup(func() { cancel(); <-done })
}

// addr is the bound address of the listener configured with bind.
func (h *harness) addr(bind string) string {
	h.t.Helper()
	a := h.plane.Addr(bind)
	if a == nil {
		h.t.Fatalf("no listener on %s", bind)
	}
	return a.String()
}

// cert writes a fresh ECDSA bundle for names to dir/name.
func (h *harness) cert(name string, names ...string) *x509.Certificate {
	h.t.Helper()
	_, c := tu.Bundle(h.t, h.dir, name, h.ca, names...)
	return c
}

// client is an HTTPS client for serverName that trusts the harness CA.
func (h *harness) client(serverName string, h2 bool, certs ...tls.Certificate) *http.Client {
	c := tu.Client(tu.Pool(h.ca), serverName, h2, certs...)
	h.t.Cleanup(c.CloseIdleConnections)
	return c
}

// get fetches url and decodes the echo backend's report.
func get(t *testing.T, c *http.Client, req *http.Request) (*http.Response, tu.Echo) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	var e tu.Echo
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("backend reply: %v: %s", err, body)
		}
	}
	return resp, e
}

func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// servedCert does a fresh handshake and returns the leaf presented.
func servedCert(addr, serverName string, roots *x509.CertPool) (*x509.Certificate, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: serverName})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func replaceOnce(s, old, new string) string { return strings.Replace(s, old, new, 1) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }
