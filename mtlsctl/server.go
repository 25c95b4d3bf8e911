package mtlsctl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/sni"
)

// Plane is the data plane as the control API sees it.
type Plane interface {
	// Apply switches to cfg atomically, or changes nothing and returns why
	// (config.Problems when it can say where).
	Apply(ctx context.Context, cfg *config.Config) error
	// Certificates lists the certificates served now.
	Certificates() []CertInfo
}

// CertInfo describes a certificate in use.
type CertInfo struct {
	Listener    string    `json:"listener"`
	Ref         string    `json:"ref"`
	Names       []string  `json:"names"`
	NotAfter    time.Time `json:"not_after"`
	Fingerprint string    `json:"sha256"`
	KeyType     string    `json:"key_type"`
}

// Signer signs a CSR for the control server certificate (the local CA, or
// Vault PKI).
type Signer interface {
	SignCSR(ctx context.Context, csrPEM []byte, validity time.Duration) (certPEM []byte, err error)
}

// Options configure a Server.
type Options struct {
	Control config.Control
	Certs   certs.Manager
	Plane   Plane
	// Config is the configuration running now (file merged with state);
	// Version its committed version (0 when nothing was committed).
	Config  *config.Config
	Version uint64
	Logger  *slog.Logger
	// Build is reported by /v1/status.
	Build string
	// Signer and the renew settings enable self-renewal; nil disables it.
	Signer Signer
	// OnCertificate, if set, is told the control certificate's not-after
	// whenever it changes (for metrics).
	OnCertificate func(cn string, notAfter time.Time)
	// OnClientRefused, if set, is told the reason (sni.ClientCertReason)
	// each time a client certificate is refused, at the handshake or on a
	// request (for metrics).
	OnClientRefused func(reason string)
	// Trust, if set, reads the client CA and CRL instead of Certs.
	Trust certs.Manager
	// TrustWatcher, if set, is told the client CA and CRL refs to watch
	// and reports their changes, so that a changed CRL applies at once
	// rather than at the next TrustRefresh. It must be a manager of the
	// control API's own (Watch replaces the watched set), read by Trust.
	TrustWatcher certs.Watcher
	// TrustRefresh is how often the client CA and CRL are re-read anyway
	// (refs no watcher covers); default one minute.
	TrustRefresh time.Duration
}

// Server is the control API. Create it with New, run it with Serve and
// Run, stop it with Shutdown.
type Server struct {
	opts    Options
	log     *slog.Logger
	cert    atomic.Pointer[certs.Bundle] // the server certificate
	trust   atomic.Pointer[trust]        // client CA pool and CRL
	started time.Time
	http    *http.Server

	mu      sync.Mutex // serialises commits; guards cfg, version and txns
	cfg     *config.Config
	version uint64
	txns    map[string]*txn
}

// trust is one generation of the client CA and CRL, with the TLS
// configuration that checks clients against it (built once per generation,
// handed out as is by GetConfigForClient).
type trust struct {
	verifier *sni.ClientVerifier
	tls      *tls.Config
}

// New loads the server certificate (a rotated or renewed one from the
// state directory wins over control.tls_container_ref) and the client CA.
func New(ctx context.Context, o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.TrustRefresh <= 0 {
		o.TrustRefresh = time.Minute
	}
	if o.Control.Bind == "" {
		o.Control.Bind = ":9443"
	}
	s := &Server{opts: o, log: o.Logger, cfg: o.Config, version: o.Version, txns: map[string]*txn{}, started: time.Now()}
	b, err := readOwnCert(ctx, o.Control, o.Certs)
	if err != nil {
		return nil, err
	}
	s.setCert(b)
	if err := s.loadTrust(ctx); err != nil {
		return nil, err
	}
	s.http = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
		TLSConfig:         s.tlsConfig(),
	}
	return s, nil
}

func (s *Server) ownCertRef() string { return ownCertPath(s.opts.Control) }

// ownCertPath is where a rotated or renewed server certificate is kept.
func ownCertPath(c config.Control) string { return filepath.Join(c.StateDir, "control", "server.pem") }

// readOwnCert loads the server certificate: a rotated or renewed one from
// the state directory wins over control.tls_container_ref.
func readOwnCert(ctx context.Context, c config.Control, mgr certs.Manager) (*certs.Bundle, error) {
	ref := c.TLSContainerRef
	if own := ownCertPath(c); fileExists(own) {
		ref = "file://" + own
	}
	b, err := mgr.Bundle(ctx, ref)
	if err == nil {
		err = b.CheckServerUse()
	}
	if err != nil {
		return nil, fmt.Errorf("control.tls_container_ref: %w", err)
	}
	return b, nil
}

// readTrust loads the client CA and CRL; errors name their config field.
func readTrust(ctx context.Context, c config.Control, mgr certs.Manager) ([]*x509.Certificate, *certs.Revocations, error) {
	data, err := mgr.Secret(ctx, c.ClientCARef)
	if err != nil {
		return nil, nil, fmt.Errorf("control.client_ca_ref: %w", err)
	}
	cas, err := certs.ParseCABundle(c.ClientCARef, data)
	if err != nil {
		return nil, nil, fmt.Errorf("control.client_ca_ref: %w", err)
	}
	var revoked *certs.Revocations
	if c.ClientCRLRef != "" {
		crl, err := mgr.Secret(ctx, c.ClientCRLRef)
		if err != nil {
			return nil, nil, fmt.Errorf("control.client_crl_ref: %w", err)
		}
		if revoked, err = certs.ParseCRL(c.ClientCRLRef, crl, cas); err != nil {
			return nil, nil, fmt.Errorf("control.client_crl_ref: %w", err)
		}
	}
	return cas, revoked, nil
}

// Check loads what New would load for c (the server certificate, the
// client CA and CRL) and checks the state directory, without starting
// anything: for terminator check. Each failure is one problem.
func Check(ctx context.Context, c config.Control, mgr certs.Manager) []error {
	var errs []error
	if _, err := readOwnCert(ctx, c, mgr); err != nil {
		errs = append(errs, err)
	}
	if _, _, err := readTrust(ctx, c, mgr); err != nil {
		errs = append(errs, err)
	}
	if fi, err := os.Stat(c.StateDir); err == nil && !fi.IsDir() {
		errs = append(errs, fmt.Errorf("control.state_dir: %s is not a directory", c.StateDir))
	} else if err != nil {
		parent := filepath.Dir(filepath.Clean(c.StateDir))
		if pfi, perr := os.Stat(parent); perr != nil || !pfi.IsDir() {
			errs = append(errs, fmt.Errorf("control.state_dir: %s does not exist and cannot be created (%s is not a directory)", c.StateDir, parent))
		}
	}
	return errs
}

func (s *Server) setCert(b *certs.Bundle) {
	s.cert.Store(b)
	if s.opts.OnCertificate != nil {
		s.opts.OnCertificate(b.Leaf().Subject.CommonName, b.NotAfter)
	}
}

// loadTrust (re)reads the client CA and CRL. A failure keeps the previous
// trust; at start it is fatal.
func (s *Server) loadTrust(ctx context.Context) error {
	c := s.opts.Control
	mgr := s.opts.Certs
	if s.opts.Trust != nil {
		mgr = s.opts.Trust
	}
	cas, revoked, err := readTrust(ctx, c, mgr)
	if err != nil {
		return err
	}
	v := sni.NewClientVerifier(cas, revoked, true)
	v.Extra = s.allowed
	t := &trust{verifier: v, tls: &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cert.Load().TLS, nil
		},
	}}
	v.Configure(t.tls)
	s.trust.Store(t)
	return nil
}

// tlsConfig hands each handshake the current trust generation's
// configuration: certificate and trust are read through atomic pointers,
// so rotation needs no restart and no per-connection copy. A full
// handshake's chain is verified by crypto/tls (so clients get unknown_ca
// or certificate_expired alerts), the CRL and allow-list by
// VerifyConnection, which also re-verifies resumed sessions.
func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.trust.Load().tls, nil
		},
	}
}

// ErrClientRefused wraps every client-certificate rejection.
var ErrClientRefused = errors.New("mtlsctl: client certificate refused")

// allowed checks control.allowed_clients.
func (s *Server) allowed(leaf *x509.Certificate) error {
	if allowed := s.opts.Control.AllowedClients; len(allowed) > 0 && !slices.ContainsFunc(identities(leaf), func(id string) bool { return slices.Contains(allowed, id) }) {
		return fmt.Errorf("%w: %q is not in control.allowed_clients", ErrClientRefused, leaf.Subject.CommonName)
	}
	return nil
}

// recheck verifies an open connection's client certificate against the
// current trust generation, so that a certificate revoked after the
// handshake loses access on its next request.
func (s *Server) recheck(cs *tls.ConnectionState) error {
	if cs == nil {
		return fmt.Errorf("%w: not a TLS connection", ErrClientRefused)
	}
	_, err := s.trust.Load().verifier.VerifyChain(cs.PeerCertificates)
	if err != nil {
		s.refused(err, "request")
	}
	return err
}

// refused logs a refused client once (per handshake or request) and
// counts it.
func (s *Server) refused(err error, at string) {
	reason := sni.ClientCertReason(err)
	if reason == "" {
		reason = "bad_certificate"
	}
	s.log.Info("control API: client certificate refused", "at", at, "reason", reason, "err", err)
	if s.opts.OnClientRefused != nil {
		s.opts.OnClientRefused(reason)
	}
}

func identities(c *x509.Certificate) []string {
	ids := append([]string{c.Subject.CommonName}, c.DNSNames...)
	for _, u := range c.URIs {
		ids = append(ids, u.String())
	}
	return ids
}

// Serve serves the API on ln (already bound) until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.http.Serve(s.newTLSListener(ln))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the API, waiting for requests in flight until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }

// Run refreshes the client CA and CRL and renews the server certificate,
// until ctx is done.
func (s *Server) Run(ctx context.Context) {
	refresh := time.NewTicker(s.opts.TrustRefresh)
	defer refresh.Stop()
	renew := time.NewTimer(s.renewDelay())
	defer renew.Stop()
	backoff := time.Minute
	var changed <-chan struct{}
	if w := s.opts.TrustWatcher; w != nil {
		refs := []string{s.opts.Control.ClientCARef}
		if r := s.opts.Control.ClientCRLRef; r != "" {
			refs = append(refs, r)
		}
		w.Watch(refs)
		changed = w.Changed()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			if err := s.loadTrust(ctx); err != nil {
				s.log.Error("control API: changed client CA or CRL refused; keeping the previous ones", "err", err)
			} else {
				s.log.Info("control API: client CA and CRL reloaded")
			}
		case <-refresh.C:
			if err := s.loadTrust(ctx); err != nil {
				s.log.Error("control API: client CA or CRL could not be refreshed; keeping the previous ones", "err", err)
			}
		case <-renew.C:
			if s.opts.Signer == nil {
				continue
			}
			if err := s.renew(ctx); err != nil {
				s.log.Error("control API: renewing the server certificate failed; retrying", "err", err, "retry_in", backoff, "not_after", s.cert.Load().NotAfter)
				renew.Reset(backoff)
				backoff = min(2*backoff, 30*time.Minute)
				continue
			}
			backoff = time.Minute
			renew.Reset(s.renewDelay())
		}
	}
}

// Base is called with a newly loaded config file (SIGHUP) and returns the
// configuration to run: the file's, while nothing was committed through the
// API; afterwards the file's admin, log and control settings with the
// committed listeners, pools and TLS settings.
func (s *Server) Base(file *config.Config) *config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.version == 0 {
		s.cfg = file
		return file
	}
	dp, err := Extract(s.cfg)
	if err != nil {
		s.log.Error("control API: keeping the committed configuration", "err", err)
		return s.cfg
	}
	s.cfg = Merge(file, dp)
	return s.cfg
}
