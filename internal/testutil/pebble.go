package testutil

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/terminator-proxy/terminator/pki"
)

// pebbleDev is scripts/pebble-dev as seen from a package two levels below
// the repository root.
const pebbleDev = "../../scripts/pebble-dev"

// PebbleOptions configure a Pebble CA.
type PebbleOptions struct {
	// HTTPPort and TLSPort are where Pebble validates HTTP-01 and
	// TLS-ALPN-01 challenges, on the address the name resolves to.
	HTTPPort, TLSPort int
	// Validity of the certificates it issues; default 90 days.
	Validity time.Duration
	// EAB, if set, makes external account binding mandatory: key id →
	// base64url HMAC key.
	EAB map[string]string
	// OCSPResponderURL is written into the certificates it issues.
	OCSPResponderURL string
}

// Pebble is Let's Encrypt's test ACME CA (scripts/pebble-dev builds it)
// with a pebble-challtestsrv DNS server that resolves every name to
// 127.0.0.1 unless SetA says otherwise. It stops with the test.
type Pebble struct {
	// Directory is the ACME directory URL.
	Directory string
	// CAFile is a PEM file trusting the directory's HTTPS certificate.
	CAFile string

	dir, bin, cfg, dns, chalMgmt, mgmt string
	client                             *http.Client

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartPebble starts challtestsrv and Pebble, or fails the test loudly.
func StartPebble(t testing.TB, o PebbleOptions) *Pebble {
	t.Helper()
	out, err := exec.Command(pebbleDev, "path").CombinedOutput()
	if err != nil {
		t.Fatalf("Pebble could not start: %v: %s", err, out)
	}
	p := &Pebble{dir: t.TempDir(), bin: strings.TrimSpace(string(out))}
	ca := CA(t, "Pebble front door")
	leaf, key, err := ca.Issue(pki.Request{CommonName: "localhost", DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, Usage: pki.ServerAuth})
	if err != nil {
		t.Fatal(err)
	}
	certFile := WriteFile(t, p.dir, "cert.pem", pki.CertPEM(leaf))
	keyFile := WriteFile(t, p.dir, "key.pem", KeyPEM(t, key))
	p.CAFile = WriteFile(t, p.dir, "ca.pem", pki.CertPEM(ca.Cert))
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	p.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	p.dns, p.chalMgmt = freeAddr(t), freeAddr(t)
	chal := exec.Command(filepath.Join(p.bin, "pebble-challtestsrv"), "-http01", "", "-https01", "", "-doh", "", "-tlsalpn01", "",
		"-dnsserver", p.dns, "-management", p.chalMgmt, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	chal.Stdout, _ = os.Create(filepath.Join(p.dir, "challtestsrv.log"))
	chal.Stderr = chal.Stdout
	chal.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := chal.Start(); err != nil {
		t.Fatalf("Pebble's DNS server could not start: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-chal.Process.Pid, syscall.SIGKILL); _ = chal.Wait() })
	waitTCP(t, p.chalMgmt, filepath.Join(p.dir, "challtestsrv.log"))

	listen, mgmt := freeAddr(t), freeAddr(t)
	p.Directory = "https://localhost:" + port(listen) + "/dir"
	p.mgmt = "https://localhost:" + port(mgmt)
	profile := map[string]any{"description": "test", "validityPeriod": uint64(o.Validity / time.Second)}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": listen, "managementListenAddress": mgmt, "certificate": certFile, "privateKey": keyFile,
		"httpPort": o.HTTPPort, "tlsPort": o.TLSPort, "ocspResponderURL": o.OCSPResponderURL,
		"externalAccountBindingRequired": len(o.EAB) > 0, "externalAccountMACKeys": o.EAB,
		"keyAlgorithm": "rsa", "retryAfter": map[string]int{"authz": 1, "order": 1},
		"profiles": map[string]any{"default": profile},
	}}
	data, _ := json.Marshal(cfg)
	p.cfg = WriteFile(t, p.dir, "pebble.json", data)
	p.Start(t)
	t.Cleanup(func() { p.Stop(t) })
	return p
}

// Start (re)starts the CA. A restarted Pebble has a new root and has
// forgotten every account and certificate.
func (p *Pebble) Start(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		t.Fatal("Pebble is already running")
	}
	logf, err := os.OpenFile(filepath.Join(p.dir, "pebble.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(p.bin, "pebble"), "-config", p.cfg, "-dnsserver", p.dns)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("Pebble could not start: %v", err)
	}
	p.cmd = cmd
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := p.client.Get(p.Directory)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(p.dir, "pebble.log"))
			t.Fatalf("Pebble did not start: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the CA (a CA outage).
func (p *Pebble) Stop(t testing.TB) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = p.cmd.Wait()
	p.cmd = nil
}

// Roots returns the running CA's root, for verifying what it issued.
func (p *Pebble) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(p.get(t, "/roots/0")) {
		t.Fatal("Pebble's root is not PEM")
	}
	return pool
}

// Intermediate returns the issuing certificate and its key (Pebble gives
// them out for tests), to sign OCSP responses with.
func (p *Pebble) Intermediate(t testing.TB) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	cb, _ := pem.Decode(p.get(t, "/intermediates/0"))
	kb, _ := pem.Decode(p.get(t, "/intermediate-keys/0"))
	if cb == nil || kb == nil {
		t.Fatal("Pebble's intermediate or its key is not PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var key any
	if key, err = x509.ParsePKCS8PrivateKey(kb.Bytes); err != nil {
		if key, err = x509.ParseECPrivateKey(kb.Bytes); err != nil {
			if key, err = x509.ParsePKCS1PrivateKey(kb.Bytes); err != nil {
				t.Fatalf("Pebble's intermediate key: %v", err)
			}
		}
	}
	return cert, key.(crypto.Signer)
}

func (p *Pebble) get(t testing.TB, path string) []byte {
	t.Helper()
	resp, err := p.client.Get(p.mgmt + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Pebble %s: %s: %s", path, resp.Status, body)
	}
	return body
}

// SetA makes the DNS server answer host with ip (instead of 127.0.0.1).
func (p *Pebble) SetA(t testing.TB, host, ip string) {
	t.Helper()
	for _, step := range []struct{ path, body string }{
		{"/clear-a", fmt.Sprintf(`{"host":%q}`, host+".")},
		{"/add-a", fmt.Sprintf(`{"host":%q,"addresses":[%q]}`, host+".", ip)},
	} {
		resp, err := http.Post("http://"+p.chalMgmt+step.path, "application/json", bytes.NewBufferString(step.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("challtestsrv %s: %s", step.path, resp.Status)
		}
	}
}

// Issued counts the certificates Pebble has issued since the test began.
func (p *Pebble) Issued(t testing.TB) int {
	t.Helper()
	log, err := os.ReadFile(filepath.Join(p.dir, "pebble.log"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(log), "Issued certificate serial")
}

// Log is Pebble's output so far, for failure messages.
func (p *Pebble) Log() string {
	log, _ := os.ReadFile(filepath.Join(p.dir, "pebble.log"))
	return string(log)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// FreePort returns a port free on 127.0.0.1 now.
func FreePort(t testing.TB) int {
	n, _ := strconv.Atoi(port(freeAddr(t)))
	return n
}

func waitTCP(t testing.TB, addr, logFile string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile)
			t.Fatalf("%s did not start listening: %v\n%s", addr, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StartVault starts a Vault dev server (root token "root") with
// scripts/vault-dev, or fails the test loudly, and returns its address
// (http://…). It stops with the test.
func StartVault(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("../../scripts/vault-dev", "start", port(freeAddr(t)), dir).CombinedOutput()
	t.Cleanup(func() {
		if pid, err := os.ReadFile(filepath.Join(dir, "vault.pid")); err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(string(pid))); err == nil {
				_ = syscall.Kill(n, syscall.SIGKILL)
			}
		}
	})
	if err != nil {
		t.Fatalf("Vault could not start: %v: %s", err, out)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "VAULT_ADDR=")
	if !ok {
		t.Fatalf("Vault could not start: %s", out)
	}
	return addr
}
