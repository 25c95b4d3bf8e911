package vault

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/pki"
)

// Options configure a Manager.
type Options struct {
	// Address, Namespace and CACert override VAULT_ADDR, VAULT_NAMESPACE
	// and VAULT_CACERT.
	Address, Namespace, CACert string
	Auth                       Auth
	// Refresh is the KV version check interval (default 30s, ±10% jitter).
	Refresh time.Duration
	// Timeout bounds each request to Vault (default 15s).
	Timeout time.Duration
	Logger  *slog.Logger
	// OnStatus, if set, is told about every reference after each check:
	// err is nil when the reference is current, else why it is stale;
	// notAfter is when the bundle still being served expires.
	OnStatus func(ref string, err error, staleSince, notAfter time.Time)
}

// Auth selects the login method: "token" (Token, or VAULT_TOKEN),
// "approle" (RoleID and SecretID) or "cert" (the client certificate in
// ClientCert/ClientKey, CertRole naming the role). Mount overrides the
// method's mount path.
type Auth struct {
	Method                string
	Token                 string
	RoleID, SecretID      string
	ClientCert, ClientKey string
	CertRole              string
	Mount                 string
}

// Manager serves vault: and vault-pki: references. Create it with New,
// run Run in a goroutine the caller owns.
type Manager struct {
	opts    Options
	client  *api.Client
	http    *http.Client // the client's, to close idle connections at the end
	log     *slog.Logger
	changed chan struct{}
	initial *api.Secret    // the first login, for Run's token watcher
	wg      sync.WaitGroup // token watcher goroutines

	loginMu sync.Mutex // serialises logins

	mu      sync.Mutex // guards the fields below
	entries map[string]*entry
	watched map[string]bool
}

// entry is the state of one reference.
type entry struct {
	bundle     *certs.Bundle
	key        crypto.Signer // PKI: the key the bundle was issued for
	version    string        // KV: metadata version or data checksum
	renewAt    time.Time     // PKI: when to renew
	lastErr    error
	staleSince time.Time
}

// New creates the client and logs in.
func New(ctx context.Context, o Options) (*Manager, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Refresh <= 0 {
		o.Refresh = 30 * time.Second
	}
	cfg := api.DefaultConfig() // reads VAULT_ADDR, VAULT_CACERT, VAULT_CLIENT_CERT, …
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault: %w", cfg.Error)
	}
	if o.Address != "" {
		cfg.Address = o.Address
	}
	tls := &api.TLSConfig{CACert: o.CACert}
	if o.Auth.Method == "cert" {
		tls.ClientCert, tls.ClientKey = o.Auth.ClientCert, o.Auth.ClientKey
	}
	if tls.CACert != "" || tls.ClientCert != "" {
		if err := cfg.ConfigureTLS(tls); err != nil {
			return nil, fmt.Errorf("vault: TLS: %w", err)
		}
	}
	cfg.MaxRetries = 1
	cfg.Timeout = 15 * time.Second
	if o.Timeout > 0 {
		cfg.Timeout = o.Timeout
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	if o.Namespace != "" {
		client.SetNamespace(o.Namespace)
	}
	m := &Manager{opts: o, client: client, http: cfg.HttpClient, log: o.Logger, changed: make(chan struct{}, 1),
		entries: map[string]*entry{}, watched: map[string]bool{}}
	if m.initial, err = m.login(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// Bundle implements certs.Manager. KV bundles are read when not cached;
// PKI bundles are issued on first use and afterwards renewed by Run, so a
// reload never waits on Vault for a certificate it already has.
func (m *Manager) Bundle(ctx context.Context, ref string) (*certs.Bundle, error) {
	m.mu.Lock()
	e := m.entries[ref]
	m.mu.Unlock()
	if e != nil && e.bundle != nil {
		return e.bundle, nil
	}
	b, err := m.fetch(ctx, ref)
	if err != nil {
		return nil, err
	}
	return b.bundle, nil
}

// fetch reads (KV) or issues (PKI) ref now and caches the result.
func (m *Manager) fetch(ctx context.Context, ref string) (*entry, error) {
	var e *entry
	var err error
	if strings.HasPrefix(ref, "vault-pki:") {
		e, err = m.issue(ctx, ref)
	} else {
		e, err = m.readKV(ctx, ref)
	}
	if err != nil {
		return nil, &certs.RefError{Ref: ref, Err: err}
	}
	m.mu.Lock()
	m.entries[ref] = e
	m.mu.Unlock()
	return e, nil
}

// Secret implements certs.Manager for CA bundles and CRLs.
func (m *Manager) Secret(ctx context.Context, ref string) ([]byte, error) {
	if strings.HasPrefix(ref, "vault-pki:") {
		r, err := parsePKI(ref)
		if err != nil || r.raw == "" {
			if err == nil {
				err = errors.New("only vault-pki:MOUNT/ca_chain and vault-pki:MOUNT/crl are secrets")
			}
			return nil, &certs.RefError{Ref: ref, Err: err}
		}
		path := r.mount + "/ca_chain"
		if r.raw == "crl" {
			path = r.mount + "/crl/pem"
		}
		var body []byte
		err = m.call(ctx, func() error {
			resp, err := m.client.Logical().ReadRawWithContext(ctx, path)
			if resp != nil {
				defer resp.Body.Close()
				if err == nil {
					var buf bytes.Buffer
					_, err = buf.ReadFrom(resp.Body)
					body = buf.Bytes()
				}
			}
			return err
		})
		if err != nil {
			return nil, &certs.RefError{Ref: ref, Err: explain(err, path)}
		}
		return body, nil
	}
	r, err := parseKV(ref)
	if err != nil {
		return nil, &certs.RefError{Ref: ref, Err: err}
	}
	fields, _, err := m.kvFields(ctx, r.path)
	if err != nil {
		return nil, &certs.RefError{Ref: ref, Err: err}
	}
	name := r.field
	if name == "" {
		return nil, &certs.RefError{Ref: ref, Err: errors.New("a KV secret reference needs ?field=NAME")}
	}
	v, ok := fields[name].(string)
	if !ok {
		return nil, &certs.RefError{Ref: ref, Err: fmt.Errorf("field %q is missing or not a string", name)}
	}
	return []byte(v), nil
}

// kvFields reads a KV v1 or v2 secret and returns its fields and a version:
// the v2 metadata version, or a checksum of v1 data.
func (m *Manager) kvFields(ctx context.Context, path string) (map[string]any, string, error) {
	var s *api.Secret
	err := m.call(ctx, func() error {
		var err error
		s, err = m.client.Logical().ReadWithContext(ctx, path)
		return err
	})
	if err != nil {
		return nil, "", explain(err, path)
	}
	if s == nil || s.Data == nil {
		return nil, "", fmt.Errorf("%w: no secret at %s", certs.ErrNotFound, path)
	}
	if data, ok := s.Data["data"].(map[string]any); ok {
		if md, ok := s.Data["metadata"].(map[string]any); ok {
			return data, fmt.Sprint(md["version"]), nil
		}
	}
	if _, isV2 := s.Data["data"]; isV2 && s.Data["data"] == nil {
		return nil, "", fmt.Errorf("%w: the latest version of %s is deleted", certs.ErrNotFound, path)
	}
	sum, _ := json.Marshal(s.Data)
	h := sha256.Sum256(sum)
	return s.Data, fmt.Sprintf("%x", h[:8]), nil
}

func (m *Manager) readKV(ctx context.Context, ref string) (*entry, error) {
	r, err := parseKV(ref)
	if err != nil {
		return nil, err
	}
	fields, version, err := m.kvFields(ctx, r.path)
	if err != nil {
		return nil, err
	}
	get := func(names []string) (string, string) {
		for _, n := range names {
			if v, ok := fields[n].(string); ok && v != "" {
				return n, v
			}
		}
		return "", ""
	}
	_, pass := get(r.passphrase)
	var passBytes []byte
	if pass != "" {
		passBytes = []byte(pass)
	}
	var b *certs.Bundle
	if name, p12 := get(r.pkcs12); p12 != "" {
		der, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(p12))
		if derr != nil {
			return nil, fmt.Errorf("field %q is not base64: %w", name, derr)
		}
		b, err = certs.ParsePKCS12(ref, der, passBytes)
	} else {
		_, cert := get(r.cert)
		_, key := get(r.key)
		_, chain := get(r.chain)
		switch {
		case cert == "":
			return nil, fmt.Errorf("no certificate field (looked for %s, or a PKCS#12 in %s)", strings.Join(r.cert, ", "), strings.Join(r.pkcs12, ", "))
		case key == "" && !strings.Contains(cert, "PRIVATE KEY"):
			return nil, fmt.Errorf("no private key field (looked for %s)", strings.Join(r.key, ", "))
		}
		b, err = certs.ParseParts(ref, []byte(cert), []byte(key), []byte(chain), passBytes)
	}
	if err != nil {
		return nil, unwrapRef(err)
	}
	return &entry{bundle: b, version: version}, nil
}

// issue has Vault sign a CSR for a new local key.
func (m *Manager) issue(ctx context.Context, ref string) (*entry, error) {
	r, err := parsePKI(ref)
	if err != nil {
		return nil, err
	}
	if r.raw != "" {
		return nil, fmt.Errorf("vault-pki:%s/%s is a secret, not a certificate", r.mount, r.raw)
	}
	key, err := pki.NewKey(pki.ECDSAP256)
	if err != nil {
		return nil, err
	}
	cn := fmt.Sprint(r.params["common_name"])
	csr, err := pki.NewCSR(cn, key)
	if err != nil {
		return nil, err
	}
	data := map[string]any{"csr": string(csr), "format": "pem"}
	for k, v := range r.params {
		data[k] = v
	}
	path := r.mount + "/sign/" + r.role
	var s *api.Secret
	err = m.call(ctx, func() error {
		var err error
		s, err = m.client.Logical().WriteWithContext(ctx, path, data)
		return err
	})
	if err != nil {
		return nil, explain(err, path)
	}
	if s == nil || s.Data == nil {
		return nil, fmt.Errorf("%s returned no certificate", path)
	}
	certPEM, _ := s.Data["certificate"].(string)
	var chain []string
	if cc, ok := s.Data["ca_chain"].([]any); ok {
		for _, c := range cc {
			if str, ok := c.(string); ok {
				chain = append(chain, str)
			}
		}
	} else if ic, ok := s.Data["issuing_ca"].(string); ok {
		chain = append(chain, ic)
	}
	keyPEM, err := pki.KeyPEM(key)
	if err != nil {
		return nil, err
	}
	b, err := certs.ParseParts(ref, []byte(certPEM), keyPEM, []byte(strings.Join(chain, "\n")), nil)
	if err != nil {
		return nil, unwrapRef(err)
	}
	return &entry{bundle: b, key: key, renewAt: renewAt(b)}, nil
}

// call runs f; when Vault answers 403 with a method that can log in again,
// it logs in once and retries (the token may have been revoked).
func (m *Manager) call(ctx context.Context, f func() error) error {
	err := f()
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusForbidden && m.opts.Auth.Method != "" && m.opts.Auth.Method != "token" {
		if _, lerr := m.login(ctx); lerr == nil {
			return f()
		}
	}
	return err
}

// explain turns Vault errors into causes an operator can act on; tokens
// and secret data never appear in them.
func explain(err error, path string) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusForbidden:
			return fmt.Errorf("%w: Vault denied %s (403): grant terminator's policy read on it (or update on a PKI sign path)", certs.ErrAccessDenied, path)
		case http.StatusNotFound:
			return fmt.Errorf("%w: %s (404)", certs.ErrNotFound, path)
		case http.StatusServiceUnavailable:
			return fmt.Errorf("Vault is sealed or unavailable (503) reading %s", path)
		}
		return fmt.Errorf("Vault answered %d for %s: %s", re.StatusCode, path, strings.Join(re.Errors, "; "))
	}
	return fmt.Errorf("Vault unreachable reading %s: %w", path, err)
}

// unwrapRef drops a *certs.RefError layer, since fetch adds its own.
func unwrapRef(err error) error {
	var re *certs.RefError
	if errors.As(err, &re) {
		return re.Err
	}
	return err
}
