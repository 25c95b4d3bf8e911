package acme

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	acmeapi "golang.org/x/crypto/acme"
)

// account is the ACME account every instance sharing a store uses: one
// key, kept in the store under the directory's hash, registered once.
type account struct {
	mu sync.Mutex
	cl *acmeapi.Client
}

// client returns a registered client, loading or creating the account key.
func (a *account) client(ctx context.Context, m *Manager) (*acmeapi.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cl != nil {
		return a.cl, nil
	}
	key, err := accountKey(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("account key: %w", err)
	}
	cl := &acmeapi.Client{Key: key, DirectoryURL: m.opts.Directory, HTTPClient: m.opts.HTTPClient, UserAgent: "terminator"}
	acct := &acmeapi.Account{}
	if m.opts.Email != "" {
		acct.Contact = []string{"mailto:" + m.opts.Email}
	}
	if m.opts.EAB != nil {
		acct.ExternalAccountBinding = &acmeapi.ExternalAccountBinding{KID: m.opts.EAB.KeyID, Key: m.opts.EAB.HMACKey}
	}
	if _, err := cl.Register(ctx, acct, acmeapi.AcceptTOS); err != nil && !errors.Is(err, acmeapi.ErrAccountAlreadyExists) {
		return nil, fmt.Errorf("registering the account at %s: %w", m.opts.Directory, err)
	}
	a.cl = cl
	return cl, nil
}

// reset forgets cl so that the next call registers again.
func (a *account) reset(cl *acmeapi.Client) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cl == cl {
		a.cl = nil
	}
}

// accountKey loads the account key from the store or, under the store's
// lock so that a fleet makes one, creates and stores it.
func accountKey(ctx context.Context, m *Manager) (*ecdsa.PrivateKey, error) {
	sum := sha256.Sum256([]byte(m.opts.Directory))
	name := "accounts/" + hex.EncodeToString(sum[:8]) + "/key.pem"
	for attempt := 0; ; attempt++ {
		data, err := m.store.Load(ctx, name)
		if err == nil {
			return parseAccountKey(data)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		ok, err := m.store.TryLock(ctx, name, m.opts.Owner, lockTTL)
		if err != nil {
			return nil, err
		}
		if ok {
			defer func() { _ = m.store.Unlock(context.WithoutCancel(ctx), name, m.opts.Owner) }()
			if data, err := m.store.Load(ctx, name); err == nil {
				return parseAccountKey(data)
			}
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return nil, err
			}
			der, err := x509.MarshalECPrivateKey(key)
			if err != nil {
				return nil, err
			}
			if err := m.store.Store(ctx, name, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})); err != nil {
				return nil, err
			}
			m.log.Info("ACME account key created", "directory", m.opts.Directory)
			return key, nil
		}
		if attempt >= 30 {
			return nil, errors.New("another instance holds the account lock and stored no key")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func parseAccountKey(data []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "EC PRIVATE KEY" {
		return nil, errors.New("the stored account key is not a PEM EC private key")
	}
	return x509.ParseECPrivateKey(b.Bytes)
}
