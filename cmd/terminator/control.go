package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/terminator-proxy/terminator/backends/file"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/dataplane"
	"github.com/terminator-proxy/terminator/metrics"
	"github.com/terminator-proxy/terminator/mtlsctl"
	"github.com/terminator-proxy/terminator/pki"
)

// restoreState returns the configuration to start with: the file's, with
// the listeners and pools last committed through the control API, if any.
func restoreState(cfg *config.Config) (*config.Config, uint64, error) {
	if cfg.Control == nil {
		return cfg, 0, nil
	}
	dp, version, ok, err := mtlsctl.LoadState(cfg.Control.StateDir)
	if err != nil || !ok {
		return cfg, 0, err
	}
	merged := mtlsctl.Merge(cfg, dp)
	if _, err := merged.Validate(); err != nil {
		return nil, 0, fmt.Errorf("committed control state in %s is invalid: %w", cfg.Control.StateDir, err)
	}
	return merged, version, nil
}

// planeAdapter shows the data plane to the control API.
type planeAdapter struct{ *dataplane.Plane }

func (p planeAdapter) Certificates() []mtlsctl.CertInfo {
	snap := p.Current()
	if snap == nil {
		return nil
	}
	var out []mtlsctl.CertInfo
	for _, ls := range snap.Listeners {
		for _, b := range ls.Bundles {
			out = append(out, mtlsctl.CertInfo{Listener: ls.Key, Ref: b.Ref, Names: b.Names, NotAfter: b.NotAfter, Fingerprint: b.Fingerprint(), KeyType: b.KeyType()})
		}
	}
	return out
}

// localSigner signs control certificates with a "terminator ca" server CA.
type localSigner struct {
	dir  string
	pass []byte
}

func (s localSigner) SignCSR(_ context.Context, csr []byte, validity time.Duration) ([]byte, error) {
	ca, err := pki.LoadCA(filepath.Join(s.dir, "server-ca.pem"), filepath.Join(s.dir, "server-ca.key"), s.pass)
	if err != nil {
		return nil, err
	}
	c, err := ca.SignCSR(csr, pki.ServerAuth, validity)
	if err != nil {
		return nil, err
	}
	return pki.CertPEM(c), nil
}

// controlBind is the control API's address.
func controlBind(cfg *config.Config) string {
	if cfg.Control == nil || cfg.Control.Bind == "" {
		return ":9443"
	}
	return cfg.Control.Bind
}

// startControl starts the control API when the config has one, on a socket
// from b. The returned stop function shuts it down; it is a no-op without
// one, and the listener is nil.
func startControl(ctx context.Context, cfg *config.Config, committed uint64, mgrs *managers, plane *dataplane.Plane, mx *metrics.Metrics, log *slog.Logger, b binder) (*mtlsctl.Server, net.Listener, func(), error) {
	if cfg.Control == nil {
		return nil, nil, func() {}, nil
	}
	c := *cfg.Control
	if err := os.MkdirAll(c.StateDir, 0o700); err != nil {
		return nil, nil, nil, fmt.Errorf("control.state_dir: %w", err)
	}
	opts := mtlsctl.Options{
		Control: c, Certs: mgrs.registry, Plane: planeAdapter{plane}, Config: cfg, Version: committed,
		Logger: log.With("component", "control"), Build: "terminator " + version,
		OnCertificate: func(cn string, notAfter time.Time) {
			mx.ControlCertNotAfter.Reset()
			mx.ControlCertNotAfter.WithLabelValues(cn).Set(float64(notAfter.Unix()))
		},
		OnClientRefused: func(reason string) { mx.ControlRefused.WithLabelValues(reason).Inc() },
	}
	// The client CA and CRL are read through a file manager of their own,
	// which watches them: a revocation applies within the watch's debounce,
	// as the data plane's CRLs do. Other schemes go to the shared managers.
	trustFiles, err := file.New(file.Options{Logger: log.With("component", "control-trust")})
	if err != nil {
		return nil, nil, nil, err
	}
	opts.Trust, opts.TrustWatcher = mgrs.registry.With("file", trustFiles), trustFiles
	if r := c.Renew; r != nil && r.VaultRole != "" {
		if mgrs.vault == nil {
			return nil, nil, nil, fmt.Errorf("control.renew.vault_role needs a vault section")
		}
		signer, err := mgrs.vault.Signer(r.VaultRole)
		if err != nil {
			return nil, nil, nil, err
		}
		opts.Signer = signer
	} else if r != nil {
		var pass []byte
		if r.PassphraseFile != "" {
			p, err := os.ReadFile(r.PassphraseFile)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("control.renew.passphrase_file: %w", err)
			}
			pass = bytes.TrimRight(p, "\r\n")
		}
		opts.Signer = localSigner{dir: r.CADir, pass: pass}
	}
	srv, err := mtlsctl.New(ctx, opts)
	if err != nil {
		return nil, nil, nil, err
	}
	bind := controlBind(cfg)
	ln, err := b.listen(sockControl, bind)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("control.bind %s: %w", bind, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 3)
	go func() { _ = srv.Serve(ln); done <- struct{}{} }()
	go func() { srv.Run(runCtx); done <- struct{}{} }()
	go func() { trustFiles.Run(runCtx); done <- struct{}{} }()
	log.Info("control API listening", "addr", ln.Addr().String())
	stop := func() {
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
		cancel()
		<-done
		<-done
		<-done
	}
	return srv, ln, stop, nil
}
