package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/terminator-proxy/terminator/backends/acme"
	"github.com/terminator-proxy/terminator/backends/vault"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/metrics"
)

// defaultACMEStorage is where one instance keeps its ACME state.
const defaultACMEStorage = "file:///var/lib/terminator/acme"

// newACME builds the ACME manager of the acme section, on the store it
// names (the vault and barbican managers must exist for theirs).
func newACME(ac config.ACME, m *managers, log *slog.Logger, mx *metrics.Metrics) (*acme.Manager, error) {
	store, err := acmeStore(ac.Storage, m)
	if err != nil {
		return nil, err
	}
	client, err := acmeHTTPClient(ac.CACert)
	if err != nil {
		return nil, err
	}
	o := acme.Options{
		Directory: ac.Directory, Email: ac.Email, HTTPClient: client, Challenges: ac.Challenges,
		KeyType: ac.KeyType, Store: store, Check: time.Duration(ac.CheckInterval) * time.Millisecond,
		Logger: log.With("component", "acme"),
	}
	if ac.EAB != nil {
		raw, err := vault.ReadSecretFile(ac.EAB.HMACKeyFile)
		if err != nil {
			return nil, fmt.Errorf("acme.eab.hmac_key_file: %w", err)
		}
		key, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(raw, "="))
		if err != nil || len(key) == 0 {
			return nil, fmt.Errorf("acme.eab.hmac_key_file: %s does not hold a base64url HMAC key", ac.EAB.HMACKeyFile)
		}
		o.EAB = &acme.EAB{KeyID: ac.EAB.KeyID, HMACKey: key}
	}
	if mx != nil {
		o.OnOrder = func(_ []string, err error) {
			result := "ok"
			if err != nil {
				result = "failed"
			}
			mx.ACMEOrders.WithLabelValues(result).Inc()
		}
		o.OnStatus = sourceStatus(mx)
	}
	mgr, err := acme.New(o)
	if err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	return mgr, nil
}

// acmeStore opens the storage URL: file:///DIR, vault://MOUNT/PATH or
// barbican:///PREFIX.
func acmeStore(raw string, m *managers) (acme.Store, error) {
	if raw == "" {
		raw = defaultACMEStorage
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("acme.storage: %w", err)
	}
	switch u.Scheme {
	case "file":
		return acme.NewFileStore(u.Path)
	case "vault":
		if m.vault == nil {
			return nil, errors.New("acme.storage: vault:// needs a vault section (or VAULT_ADDR)")
		}
		return m.vault.KVStore(u.Host, u.Path), nil
	case "barbican":
		if m.barbican == nil {
			return nil, errors.New("acme.storage: barbican:// needs a barbican section (or OS_* variables)")
		}
		return m.barbican.Store(u.Path), nil
	}
	return nil, fmt.Errorf("acme.storage: %q: want file:///DIR, vault://MOUNT/PATH or barbican:///PREFIX", raw)
}

// acmeHTTPClient trusts the system's roots plus caFile's.
func acmeHTTPClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("acme.ca_cert: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("acme.ca_cert: no PEM certificate in %s", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}
