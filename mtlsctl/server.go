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
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/config"
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
	// TrustRefresh is how often the client CA and CRL are re-read;
	// default one minute.
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

type trust struct {
	roots   *x509.CertPool
	revoked *certs.Revocations
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
	ref := o.Control.TLSContainerRef
	if own := s.ownCertRef(); fileExists(own) {
		ref = "file://" + own
	}
	b, err := o.Certs.Bundle(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("control.tls_container_ref: %w", err)
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

func (s *Server) ownCertRef() string {
	return filepath.Join(s.opts.Control.StateDir, "control", "server.pem")
}

func (s *Server) setCert(b *certs.Bundle) {
	s.cert.Store(b)
	if s.opts.OnCertificate != nil {
		s.opts.OnCertificate(b.Leaf.Subject.CommonName, b.Leaf.NotAfter)
	}
}

// loadTrust (re)reads the client CA and CRL. A failure keeps the previous
// trust; at start it is fatal.
func (s *Server) loadTrust(ctx context.Context) error {
	c := s.opts.Control
	data, err := s.opts.Certs.Secret(ctx, c.ClientCARef)
	if err != nil {
		return fmt.Errorf("control.client_ca_ref: %w", err)
	}
	cas, err := certs.ParseCABundle(c.ClientCARef, data)
	if err != nil {
		return fmt.Errorf("control.client_ca_ref: %w", err)
	}
	t := &trust{roots: x509.NewCertPool()}
	for _, ca := range cas {
		t.roots.AddCert(ca)
	}
	if c.ClientCRLRef != "" {
		crl, err := s.opts.Certs.Secret(ctx, c.ClientCRLRef)
		if err != nil {
			return fmt.Errorf("control.client_crl_ref: %w", err)
		}
		if t.revoked, err = certs.ParseCRL(c.ClientCRLRef, crl, cas); err != nil {
			return fmt.Errorf("control.client_crl_ref: %w", err)
		}
	}
	s.trust.Store(t)
	return nil
}

// tlsConfig is built once; certificate and trust are read through atomic
// pointers on each handshake, so rotation needs no new config.
func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cert.Load().TLS, nil
		},
		// The chain is verified in VerifyConnection against the current
		// client CA, on full and resumed handshakes alike.
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: s.verifyClient,
	}
}

// ErrClientRefused wraps every client-certificate rejection.
var ErrClientRefused = errors.New("mtlsctl: client certificate refused")

func (s *Server) verifyClient(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: none presented", ErrClientRefused)
	}
	t := s.trust.Load()
	leaf := cs.PeerCertificates[0]
	opts := x509.VerifyOptions{Roots: t.roots, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := leaf.Verify(opts)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrClientRefused, err)
	}
	for _, c := range chains[0] {
		if t.revoked.IsRevoked(c) {
			return fmt.Errorf("%w: %q is revoked", ErrClientRefused, c.Subject.CommonName)
		}
	}
	if allowed := s.opts.Control.AllowedClients; len(allowed) > 0 && !slices.ContainsFunc(identities(leaf), func(id string) bool { return slices.Contains(allowed, id) }) {
		return fmt.Errorf("%w: %q is not in control.allowed_clients", ErrClientRefused, leaf.Subject.CommonName)
	}
	return nil
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
	err := s.http.Serve(tls.NewListener(ln, s.http.TLSConfig))
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
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			if err := s.loadTrust(ctx); err != nil {
				s.log.Error("control API: client CA or CRL could not be refreshed; keeping the previous ones", "err", err)
			}
		case <-renew.C:
			if s.opts.Signer == nil {
				continue
			}
			if err := s.renew(ctx); err != nil {
				s.log.Error("control API: renewing the server certificate failed; retrying", "err", err, "retry_in", backoff, "not_after", s.cert.Load().Leaf.NotAfter)
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
