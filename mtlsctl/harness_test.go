package mtlsctl_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/terminator-proxy/terminator/backends/file"
	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/dataplane"
	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/metrics"
	"github.com/terminator-proxy/terminator/mtlsctl"
	"github.com/terminator-proxy/terminator/pki"
)

// env is a running control API in front of a real data plane.
type env struct {
	t                  *testing.T
	dir                string
	serverCA, clientCA *pki.CA
	plane              *dataplane.Plane
	reg                *certs.Registry
	srv                *mtlsctl.Server
	addr               string
	controller         tls.Certificate
	ctl                config.Control
	stop               func()
}

type planeAdapter struct{ *dataplane.Plane }

func (p planeAdapter) Certificates() []mtlsctl.CertInfo {
	var out []mtlsctl.CertInfo
	if s := p.Current(); s != nil {
		for _, ls := range s.Listeners {
			for _, b := range ls.Bundles {
				out = append(out, mtlsctl.CertInfo{Listener: ls.Key, Ref: b.Ref, Names: b.Names, NotAfter: b.NotAfter})
			}
		}
	}
	return out
}

func issuePair(t testing.TB, ca *pki.CA, r pki.Request) tls.Certificate {
	t.Helper()
	c, k, err := ca.Issue(r)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}
}

func pemPair(t testing.TB, c tls.Certificate) []byte {
	return append(pki.CertPEM(c.Leaf), tu.KeyPEM(t, c.PrivateKey.(crypto.Signer))...)
}

// newEnv starts everything; mutate tweaks the control settings first.
func newEnv(t *testing.T, mutate func(*env)) *env {
	t.Helper()
	tu.NoLeaks(t)
	e := &env{t: t, dir: t.TempDir(), serverCA: tu.CA(t, "server CA"), clientCA: tu.CA(t, "client CA")}
	srvCert := issuePair(t, e.serverCA, pki.Request{CommonName: "amp-1", DNSNames: []string{"amp-1"}, Usage: pki.ServerAuth})
	tu.WriteFile(t, e.dir, "control.pem", pemPair(t, srvCert))
	tu.WriteFile(t, e.dir, "client-ca.pem", pki.CertPEM(e.clientCA.Cert))
	crl, _ := e.clientCA.CRL(nil, 0)
	tu.WriteFile(t, e.dir, "client-ca.crl", crl)
	e.controller = issuePair(t, e.clientCA, pki.Request{CommonName: "controller", Usage: pki.ClientAuth})
	e.ctl = config.Control{
		Bind:            "127.0.0.1:0",
		TLSContainerRef: "file://" + e.dir + "/control.pem",
		ClientCARef:     "file://" + e.dir + "/client-ca.pem",
		ClientCRLRef:    "file://" + e.dir + "/client-ca.crl",
		StateDir:        filepath.Join(e.dir, "state"),
	}
	if mutate != nil {
		mutate(e)
	}
	e.start(nil)
	return e
}

// start runs the plane and control server; opts, if set, adjusts options.
func (e *env) start(adjust func(*mtlsctl.Options)) {
	t := e.t
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	fm, err := file.New(file.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e.reg = certs.NewRegistry()
	e.reg.Register("file", fm)
	e.plane = dataplane.New(dataplane.Options{Certs: e.reg, Logger: log, Metrics: metrics.New()})
	base := &config.Config{Control: &e.ctl}
	base.ApplyDefaults()
	cfg, version := base, uint64(0)
	if dp, v, ok, err := mtlsctl.LoadState(e.ctl.StateDir); err != nil {
		t.Fatal(err)
	} else if ok {
		cfg, version = mtlsctl.Merge(base, dp), v
	}
	if err := e.plane.Apply(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	opts := mtlsctl.Options{Control: e.ctl, Certs: e.reg, Plane: planeAdapter{e.plane}, Config: cfg, Version: version, Logger: log, TrustRefresh: 200 * time.Millisecond}
	if adjust != nil {
		adjust(&opts)
	}
	e.srv, err = mtlsctl.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 3)
	go func() { _ = e.srv.Serve(ln); done <- struct{}{} }()
	go func() { e.srv.Run(ctx); done <- struct{}{} }()
	go func() { fm.Run(ctx); done <- struct{}{} }()
	stopped := false
	e.stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = e.srv.Shutdown(context.Background())
		_ = e.plane.Shutdown(context.Background())
		cancel()
		<-done
		<-done
		<-done
	}
	t.Cleanup(e.stop)
}

// client is an mTLS client presenting cert (nil: none).
func (e *env) client(cert *tls.Certificate) *http.Client {
	tc := &tls.Config{RootCAs: tu.Pool(e.serverCA), ServerName: "amp-1"}
	if cert != nil {
		c := *cert
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	}
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
	e.t.Cleanup(cl.CloseIdleConnections)
	return cl
}

// call does a request as the controller and decodes the JSON answer.
func (e *env) call(method, path string, body any, header map[string]string) (int, map[string]any, http.Header) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, "https://"+e.addr+path, rd)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.client(&e.controller).Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, resp.Header
}

var configRenew = config.ControlRenew{CADir: "unused-by-test-signer", CommonName: "amp-1", Validity: "3s"}

func x509CertPool(pemData []byte) *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(pemData)
	return p
}
