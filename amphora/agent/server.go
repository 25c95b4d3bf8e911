package agent

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
	"sync"
	"time"

	"github.com/terminator-proxy/terminator/amphora/agentconf"
	"github.com/terminator-proxy/terminator/amphora/heartbeat"
	"github.com/terminator-proxy/terminator/amphora/netplug"
	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/config"
)

// Plane is the data plane as the agent drives it.
type Plane interface {
	// Check builds cfg as Apply would (certificates read, every listener's
	// TLS settings made) without serving it.
	Check(ctx context.Context, cfg *config.Config) error
	// Apply serves cfg, or changes nothing and says why.
	Apply(ctx context.Context, cfg *config.Config) error
}

// Options configure a Server.
type Options struct {
	Config     *agentconf.Config
	ConfigPath string // the agent's own file, replaced by PUT /1.0/config
	Plane      Plane
	// Heartbeat, if set, gets the new settings of PUT /1.0/config.
	Heartbeat *heartbeat.Sender
	// Net plugs the VIP and member NICs into the amphora's namespace;
	// nil answers the plug calls without changing the network (an agent
	// run outside an amphora, as in tests of the configuration calls).
	Net *netplug.Plugger
	// VRRPCheck is the command keepalived's check script runs to check
	// that terminator serves (exit 0); without one the check fails, so an
	// amphora that cannot check itself never holds the VIP.
	VRRPCheck []string
	// Version is terminator's, reported by /1.0/info.
	Version string
	Logger  *slog.Logger
}

// HAProxyCompat is the haproxy version /1.0/info reports: the level of
// the configuration terminator translates. The controller's feature gates
// (http-reuse, server-state, pool ALPN, PROMETHEUS) then pick the template
// that haproxy 2.6, Debian 12's, gets.
const HAProxyCompat = "2.6.12"

// Server is the agent API.
type Server struct {
	opts Options
	log  *slog.Logger
	http *http.Server

	mu sync.Mutex // serialises changes to the files and the data plane

	certMu   sync.Mutex // guards the cached server certificate
	cert     *tls.Certificate
	certMod  time.Time
	certSize int64
}

// New returns the agent API for o.
func New(o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Server{opts: o, log: o.Logger}
	if _, err := s.serverCert(nil); err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(o.Config.ServerCA)
	if err != nil {
		return nil, fmt.Errorf("amphora_agent.agent_server_ca: %w", err)
	}
	cas, err := certs.ParseCABundle(o.Config.ServerCA, caPEM)
	if err != nil {
		return nil, fmt.Errorf("amphora_agent.agent_server_ca: %w", err)
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	s.http = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       o.Config.RequestReadTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
		TLSConfig: &tls.Config{
			// gunicorn's ssl_version=PROTOCOL_TLSv1_2: that version only.
			MinVersion:     o.Config.TLSVersion,
			MaxVersion:     o.Config.TLSVersion,
			ClientAuth:     tls.RequireAndVerifyClientCert,
			ClientCAs:      pool,
			GetCertificate: s.serverCert,
			NextProtos:     []string{"http/1.1"},
		},
	}
	return s, nil
}

// serverCert returns agent_server_cert (certificate and key in one PEM),
// read again when the file changed, so that a rotated certificate
// (PUT /1.0/certificate) serves new connections without a restart.
func (s *Server) serverCert(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	path := s.opts.Config.ServerCert
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("amphora_agent.agent_server_cert: %w", err)
	}
	s.certMu.Lock()
	defer s.certMu.Unlock()
	if s.cert != nil && fi.ModTime().Equal(s.certMod) && fi.Size() == s.certSize {
		return s.cert, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("amphora_agent.agent_server_cert: %w", err)
	}
	b, err := certs.ParsePEM("file://"+path, data, nil)
	if err != nil {
		if s.cert != nil {
			s.log.Error("agent: the server certificate file is unreadable; keeping the previous one", "err", err)
			return s.cert, nil
		}
		return nil, fmt.Errorf("amphora_agent.agent_server_cert: %w", err)
	}
	s.cert, s.certMod, s.certSize = b.TLS, fi.ModTime(), fi.Size()
	return s.cert, nil
}

// Serve serves the API on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.http.Serve(tls.NewListener(ln, s.http.TLSConfig))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the API, waiting for requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }
