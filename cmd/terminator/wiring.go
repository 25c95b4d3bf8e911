package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/terminator-proxy/terminator/backends/acme"
	"github.com/terminator-proxy/terminator/backends/barbican"
	"github.com/terminator-proxy/terminator/backends/file"
	"github.com/terminator-proxy/terminator/backends/vault"
	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/metrics"
	"github.com/terminator-proxy/terminator/proxy"
)

// managers holds the certificate managers of one process and the
// goroutines that keep them current.
type managers struct {
	registry *certs.Registry
	file     *file.Manager
	vault    *vault.Manager    // nil without a vault section or VAULT_ADDR
	barbican *barbican.Manager // nil without a barbican section or OS_* variables
	acme     *acme.Manager     // nil without an acme section
}

// challenges is what answers ACME challenges on the listeners, if anything.
func (m *managers) challenges() proxy.ChallengeResponder {
	if m.acme == nil {
		return nil
	}
	return m.acme
}

// newManagers creates every certificate manager terminator has and
// registers it by reference scheme. mx may be nil.
func newManagers(ctx context.Context, cfg *config.Config, log *slog.Logger, mx *metrics.Metrics) (*managers, error) {
	rescan := 10 * time.Second
	if cfg != nil && cfg.TLS.RescanInterval > 0 {
		rescan = time.Duration(cfg.TLS.RescanInterval) * time.Millisecond
	}
	fm, err := file.New(file.Options{Rescan: rescan, Logger: log})
	if err != nil {
		return nil, err
	}
	reg := certs.NewRegistry()
	reg.Register("file", fm)
	reg.Hint("acme", "acme:// references need an acme section (directory, agree_tos; see the README's ACME section)")
	reg.Hint("vault", "vault: references need a vault section or VAULT_ADDR")
	reg.Hint("vault-pki", "vault-pki: references need a vault section or VAULT_ADDR")
	reg.Hint("https", "Barbican hrefs need a barbican section or the OpenStack OS_* variables")
	reg.Hint("http", "Barbican hrefs need a barbican section or the OpenStack OS_* variables")
	m := &managers{registry: reg, file: fm}
	var vc config.Vault
	if cfg != nil && cfg.Vault != nil {
		vc = *cfg.Vault
	}
	if cfg != nil && cfg.Vault != nil || os.Getenv("VAULT_ADDR") != "" {
		opts, err := vaultOptions(vc, log, mx)
		if err != nil {
			return nil, err
		}
		if m.vault, err = vault.New(ctx, opts); err != nil {
			return nil, err
		}
		reg.Register("vault", m.vault)
		reg.Register("vault-pki", m.vault)
	}
	if wantBarbican(cfg) {
		var bc config.Barbican
		if cfg != nil && cfg.Barbican != nil {
			bc = *cfg.Barbican
		}
		if m.barbican, err = newBarbican(ctx, bc, log, mx); err != nil {
			return nil, err
		}
		reg.Register("https", m.barbican)
		reg.Register("http", m.barbican)
	}
	if cfg != nil && cfg.ACME != nil {
		if m.acme, err = newACME(*cfg.ACME, m, log, mx); err != nil {
			return nil, err
		}
		reg.Register("acme", m.acme)
	}
	return m, nil
}

func vaultOptions(vc config.Vault, log *slog.Logger, mx *metrics.Metrics) (vault.Options, error) {
	o := vault.Options{
		Address: vc.Address, Namespace: vc.Namespace, CACert: vc.CACert, Logger: log.With("component", "vault"),
		Refresh: time.Duration(vc.RefreshInterval) * time.Millisecond,
		Auth: vault.Auth{Method: vc.Auth.Method, RoleID: vc.Auth.RoleID, ClientCert: vc.Auth.ClientCert,
			ClientKey: vc.Auth.ClientKey, CertRole: vc.Auth.CertRole, Mount: vc.Auth.Mount},
	}
	var err error
	if vc.Auth.TokenFile != "" {
		if o.Auth.Token, err = vault.ReadSecretFile(vc.Auth.TokenFile); err != nil {
			return o, fmt.Errorf("vault.auth.token_file: %w", err)
		}
	}
	if vc.Auth.SecretIDFile != "" {
		if o.Auth.SecretID, err = vault.ReadSecretFile(vc.Auth.SecretIDFile); err != nil {
			return o, fmt.Errorf("vault.auth.secret_id_file: %w", err)
		}
	}
	if mx != nil {
		o.OnStatus = sourceStatus(mx)
	}
	return o, nil
}

// sourceStatus reports a secret store's view of one reference as metrics.
func sourceStatus(mx *metrics.Metrics) func(ref string, err error, since, notAfter time.Time) {
	return func(ref string, err error, since, notAfter time.Time) {
		stale, sinceUnix := 0.0, 0.0
		if err != nil {
			stale, sinceUnix = 1, float64(since.Unix())
		}
		mx.SourceStale.WithLabelValues(ref).Set(stale)
		mx.SourceStaleSince.WithLabelValues(ref).Set(sinceUnix)
		if !notAfter.IsZero() {
			mx.SourceNotAfter.WithLabelValues(ref).Set(float64(notAfter.Unix()))
		}
	}
}

// run runs the managers' watchers until ctx is done.
func (m *managers) run(ctx context.Context) {
	var wg sync.WaitGroup
	if m.vault != nil {
		wg.Add(1)
		go func() { defer wg.Done(); m.vault.Run(ctx) }()
	}
	if m.barbican != nil {
		wg.Add(1)
		go func() { defer wg.Done(); m.barbican.Run(ctx) }()
	}
	if m.acme != nil {
		wg.Add(1)
		go func() { defer wg.Done(); m.acme.Run(ctx) }()
	}
	m.file.Run(ctx)
	wg.Wait()
}

func newLogger(format, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level)) // validated by config; defaults to info
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func printProblems(prefix string, ps config.Problems) {
	for _, p := range ps {
		fmt.Fprintf(os.Stderr, "%s%s\n", prefix, p)
	}
}
