package main

import (
	"bufio"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// served is what a TLS handshake with one name showed.
type served struct {
	serial *big.Int
	leaf   *x509.Certificate
	chain  []*x509.Certificate
	ocsp   []byte
}

// handshake connects to addr with serverName and returns the certificate
// served (not verified: the caller checks against the CA it expects).
func handshake(addr, serverName string) (*served, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, &tls.Config{ServerName: serverName, InsecureSkipVerify: true}) //nolint:gosec // verified by the caller
	if err != nil {
		return nil, err
	}
	defer c.Close()
	cs := c.ConnectionState()
	return &served{serial: cs.PeerCertificates[0].SerialNumber, leaf: cs.PeerCertificates[0], chain: cs.PeerCertificates[1:], ocsp: cs.OCSPResponse}, nil
}

// verifies reports whether s chains to roots for name.
func (s *served) verifies(roots *x509.CertPool, name string) bool {
	inter := x509.NewCertPool()
	for _, c := range s.chain {
		inter.AddCert(c)
	}
	_, err := s.leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: inter})
	return err == nil
}

// waitFor polls f every 100 ms until it reports true or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, f func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !f() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// process is a terminator serve run whose log is kept for failures.
type process struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	log strings.Builder
}

func startServe(t *testing.T, cfgPath string, env ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(binary, "serve", "--config", cfgPath, "--drain-timeout", "2s")}
	p.cmd.Env = append(os.Environ(), env...)
	stderr, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		<-done
		if t.Failed() {
			t.Logf("terminator %s log:\n%s", filepath.Base(cfgPath), p.logs())
		}
	})
	return p
}

func (p *process) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// metric returns the value of the first sample of name whose labels
// contain every one of labels (e.g. `result="ok"`), or 0.
func metric(t *testing.T, admin, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if ok {
			v, _ := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
			return v
		}
	}
	return 0
}

// ocspResponder answers every OCSP request Good, signed by the issuer
// that sign returns (Pebble's intermediate, which changes when Pebble
// restarts).
func ocspResponder(t *testing.T, sign func() (*x509.Certificate, crypto.Signer)) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
		req, err := ocsp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		issuer, key := sign()
		now := time.Now()
		resp, err := ocsp.CreateResponse(issuer, issuer, ocsp.Response{
			Status: ocsp.Good, SerialNumber: req.SerialNumber, ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour),
		}, key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		_, _ = w.Write(resp)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestACMEWithPebble: one instance, file storage, HTTP-01 answered on an
// HTTP listener that otherwise redirects to HTTPS. It obtains a
// certificate for two names from a real ACME CA, staples its OCSP
// response, renews it two thirds into its lifetime, keeps serving through
// a CA outage that spans a renewal, and renews once the CA is back (a
// restarted Pebble has forgotten the account, which is registered again).
func TestACMEWithPebble(t *testing.T) {
	dir := t.TempDir()
	httpPort, tlsPort := tu.FreePort(t), tu.FreePort(t)
	var mu sync.Mutex
	var issuer *x509.Certificate
	var issuerKey crypto.Signer
	ocspSrv := ocspResponder(t, func() (*x509.Certificate, crypto.Signer) { mu.Lock(); defer mu.Unlock(); return issuer, issuerKey })
	const life = 24 * time.Second
	pebble := tu.StartPebble(t, tu.PebbleOptions{HTTPPort: httpPort, TLSPort: tlsPort, Validity: life, OCSPResponderURL: ocspSrv.URL})
	refreshIssuer := func() {
		c, k := pebble.Intermediate(t)
		mu.Lock()
		issuer, issuerKey = c, k
		mu.Unlock()
	}
	refreshIssuer()
	backend := tu.EchoBackend(t)
	_, backendPort := tu.HostPort(t, backend.URL)
	admin := freePort(t)
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", tlsPort)
	cfg := tu.WriteFile(t, dir, "acme.yaml", []byte(fmt.Sprintf(`
admin: {bind: %s}
acme:
  directory: %s
  agree_tos: true
  email: ops@shop.test
  ca_cert: %s
  challenges: [http-01]
  storage: file://%s/acme
  check_interval: 1000
listeners:
  - name: http
    protocol: HTTP
    bind: 127.0.0.1:%d
    https_redirect: {port: %d}
  - name: https
    protocol: TERMINATED_HTTPS
    bind: %s
    default_tls_container_ref: acme://shop.test?san=www.shop.test
    default_pool: app
pools:
  - {name: app, members: [{address: 127.0.0.1, protocol_port: %s}]}
`, admin, pebble.Directory, pebble.CAFile, dir, httpPort, tlsPort, tlsAddr, backendPort)))
	start := time.Now()
	p := startServe(t, cfg)
	const ref = `ref="acme://shop.test?san=www.shop.test"`

	// 1. Issuance: a placeholder first, then Pebble's certificate.
	var first *served
	took := waitFor(t, 60*time.Second, "a certificate from Pebble", func() bool {
		s, err := handshake(tlsAddr, "shop.test")
		if err == nil && s.verifies(pebble.Roots(t), "shop.test") {
			first = s
			return true
		}
		return false
	})
	t.Logf("issued %s after start (serial %x, valid %s)", took.Round(time.Millisecond), first.serial, first.leaf.NotAfter.Sub(first.leaf.NotBefore))
	if !strings.Contains(p.logs(), "serving a placeholder") {
		t.Error("no placeholder was served while the first certificate was obtained")
	}
	if s, err := handshake(tlsAddr, "www.shop.test"); err != nil || s.serial.Cmp(first.serial) != 0 || !s.verifies(pebble.Roots(t), "www.shop.test") {
		t.Errorf("www.shop.test is not served the same certificate: %v", err)
	}
	client := tu.Client(pebble.Roots(t), "www.shop.test", true)
	if resp, err := client.Get("https://" + tlsAddr + "/x"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("request over the ACME certificate: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// The HTTP listener still redirects everything else.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := noFollow.Get(fmt.Sprintf("http://127.0.0.1:%d/.well-known/acme-challenge/unknown-token-0123456789", httpPort)); err != nil || resp.StatusCode != http.StatusMovedPermanently {
		t.Errorf("an unknown challenge token is not redirected like any request: %v %v", resp, err)
	}

	// 2. The OCSP response is stapled.
	waitFor(t, 20*time.Second, "a stapled OCSP response", func() bool {
		s, err := handshake(tlsAddr, "shop.test")
		if err != nil || s.ocsp == nil || s.serial.Cmp(first.serial) != 0 {
			return false
		}
		r, err := ocsp.ParseResponseForCert(s.ocsp, s.leaf, s.chain[0])
		return err == nil && r.Status == ocsp.Good
	})

	// 3. Renewal two thirds into the lifetime.
	var second *served
	waitFor(t, life, "a renewed certificate", func() bool {
		s, err := handshake(tlsAddr, "shop.test")
		if err == nil && s.serial.Cmp(first.serial) != 0 && s.verifies(pebble.Roots(t), "shop.test") {
			second = s
			return true
		}
		return false
	})
	at := time.Since(first.leaf.NotBefore)
	t.Logf("renewed %s into a %s lifetime (serial %x)", at.Round(100*time.Millisecond), life, second.serial)
	if at < life/2 || at > life {
		t.Errorf("renewed %s into the lifetime, want about two thirds of %s", at, life)
	}
	if ok := metric(t, admin, "terminator_acme_orders_total", `result="ok"`); ok != 2 {
		t.Errorf("terminator_acme_orders_total{result=ok} = %v, want 2", ok)
	}

	// 4. CA outage across the next renewal: the certificate keeps serving.
	pebble.Stop(t)
	outage := time.Now()
	waitFor(t, life+20*time.Second, "two failed renewals", func() bool {
		return metric(t, admin, "terminator_acme_orders_total", `result="failed"`) >= 2
	})
	if s, err := handshake(tlsAddr, "shop.test"); err != nil || s.serial.Cmp(second.serial) != 0 {
		t.Fatalf("during the outage the last certificate is not served: %v", err)
	}
	if v := metric(t, admin, "terminator_certificate_source_stale", ref); v != 1 {
		t.Errorf("terminator_certificate_source_stale{%s} = %v during the outage, want 1", ref, v)
	}
	if v := metric(t, admin, "terminator_certificate_source_not_after_seconds", ref); int64(v) != second.leaf.NotAfter.Unix() {
		t.Errorf("terminator_certificate_source_not_after_seconds = %v, want %d", v, second.leaf.NotAfter.Unix())
	}

	// 5. The CA is back (new root, no accounts): renewed again.
	pebble.Start(t)
	refreshIssuer()
	back := time.Now()
	waitFor(t, 60*time.Second, "a certificate from the restarted CA", func() bool {
		s, err := handshake(tlsAddr, "shop.test")
		return err == nil && s.verifies(pebble.Roots(t), "shop.test")
	})
	t.Logf("CA down %s; renewed %s after it came back; %s since start; %d orders failed",
		back.Sub(outage).Round(100*time.Millisecond), time.Since(back).Round(100*time.Millisecond), time.Since(start).Round(time.Second),
		int(metric(t, admin, "terminator_acme_orders_total", `result="failed"`)))
	waitFor(t, 5*time.Second, "the reference no longer stale", func() bool {
		return metric(t, admin, "terminator_certificate_source_stale", ref) == 0
	})
	if n := strings.Count(p.logs(), "ACME account"); n == 0 {
		t.Log("note: no account log lines")
	}
}
