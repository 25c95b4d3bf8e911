package barbican

import (
	"context"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/keymanager/v1/secrets"
	"github.com/gophercloud/gophercloud/v2/pagination"
)

// Store keeps values as opaque Barbican secrets named
// "terminator-acme:PREFIX:KEY": the ACME manager's shared store (it
// satisfies acme.Store). Barbican secrets cannot be changed, so a write
// creates a new secret and deletes the older ones of that name; a read
// takes the newest.
//
// Locks are secrets named "terminator-acme-lock:PREFIX:NAME" with
// Barbican's expiration: an instance creates its own, lists them oldest
// first, and holds the lock when the oldest unexpired one is its own;
// otherwise it deletes its own and backs off. Barbican's single database
// orders the creations, so two instances never both hold a lock.
type Store struct {
	m      *Manager
	prefix string

	mu   sync.Mutex
	held map[string]string // lock name → the secret id this process created
}

// maxStoreValue bounds a value read back (certificates are a few KiB).
const maxStoreValue = 1 << 20

// Store returns a store whose secret names start with prefix.
func (m *Manager) Store(prefix string) *Store {
	return &Store{m: m, prefix: strings.Trim(prefix, "/"), held: map[string]string{}}
}

func (s *Store) name(key string) string { return "terminator-acme:" + s.prefix + ":" + key }

func (s *Store) lockName(name string) string { return "terminator-acme-lock:" + s.prefix + ":" + name }

// list returns the secrets named name, oldest first.
func (s *Store) list(ctx context.Context, name string) ([]secrets.Secret, error) {
	var out []secrets.Secret
	err := secrets.List(s.m.client, secrets.ListOpts{Name: name, Sort: "created:asc", Limit: 100}).EachPage(ctx,
		func(_ context.Context, p pagination.Page) (bool, error) {
			ss, err := secrets.ExtractSecrets(p)
			if err != nil {
				return false, err
			}
			for _, sec := range ss {
				if sec.Name == name { // the filter is exact, but check
					out = append(out, sec)
				}
			}
			return len(out) < 1000, nil
		})
	if err != nil {
		return nil, s.m.explain(err, "secrets named "+name)
	}
	return out, nil
}

// Load returns the newest value of key; an error wrapping fs.ErrNotExist
// when there is none.
func (s *Store) Load(ctx context.Context, key string) ([]byte, error) {
	ss, err := s.list(ctx, s.name(key))
	if err != nil {
		return nil, err
	}
	if len(ss) == 0 {
		return nil, fmt.Errorf("barbican: no secret named %s: %w", s.name(key), fs.ErrNotExist)
	}
	newest := ss[len(ss)-1]
	raw, err := s.m.payload(ctx, secretID(newest.SecretRef), "application/octet-stream")
	if err != nil {
		return nil, err
	}
	if len(raw) > maxStoreValue {
		return nil, fmt.Errorf("barbican: %s is larger than %d bytes", s.name(key), maxStoreValue)
	}
	return raw, nil
}

// Store creates a secret with value and deletes the older ones of key.
func (s *Store) Store(ctx context.Context, key string, value []byte) error {
	if _, err := s.create(ctx, s.name(key), value, nil); err != nil {
		return err
	}
	ss, err := s.list(ctx, s.name(key))
	if err != nil || len(ss) < 2 {
		return err
	}
	for _, old := range ss[:len(ss)-1] {
		_ = secrets.Delete(ctx, s.m.client, secretID(old.SecretRef)).ExtractErr() // a concurrent writer may have
	}
	return nil
}

func (s *Store) create(ctx context.Context, name string, value []byte, expires *time.Time) (string, error) {
	sec, err := secrets.Create(ctx, s.m.client, secrets.CreateOpts{
		Name: name, SecretType: secrets.OpaqueSecret, Expiration: expires,
		Payload: base64.StdEncoding.EncodeToString(value), PayloadContentType: "application/octet-stream", PayloadContentEncoding: "base64",
	}).Extract()
	if err != nil {
		return "", s.m.explain(err, "a new secret named "+name)
	}
	return secretID(sec.SecretRef), nil
}

// Delete deletes every secret of key.
func (s *Store) Delete(ctx context.Context, key string) error {
	ss, err := s.list(ctx, s.name(key))
	if err != nil {
		return err
	}
	for _, sec := range ss {
		err := secrets.Delete(ctx, s.m.client, secretID(sec.SecretRef)).ExtractErr()
		if err != nil && !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			return s.m.explain(err, "secret "+sec.SecretRef)
		}
	}
	return nil
}

// TryLock takes name for owner until ttl passes (see Store).
func (s *Store) TryLock(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	_, mine := s.held[name]
	s.mu.Unlock()
	if mine {
		return true, nil
	}
	expires := time.Now().Add(ttl).UTC()
	id, err := s.create(ctx, s.lockName(name), []byte(owner), &expires)
	if err != nil {
		return false, err
	}
	ss, err := s.list(ctx, s.lockName(name))
	if err != nil {
		_ = secrets.Delete(ctx, s.m.client, id).ExtractErr()
		return false, err
	}
	now := time.Now()
	for _, sec := range ss {
		if !sec.Expiration.IsZero() && !now.Before(sec.Expiration) {
			_ = secrets.Delete(ctx, s.m.client, secretID(sec.SecretRef)).ExtractErr() // a crashed holder's
			continue
		}
		if secretID(sec.SecretRef) == id {
			s.mu.Lock()
			s.held[name] = id
			s.mu.Unlock()
			return true, nil
		}
		break // an older live lock: someone else's
	}
	_ = secrets.Delete(ctx, s.m.client, id).ExtractErr()
	return false, nil
}

// Unlock deletes the lock secret this process created for name.
func (s *Store) Unlock(ctx context.Context, name, _ string) error {
	s.mu.Lock()
	id, ok := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if !ok {
		return nil
	}
	if err := secrets.Delete(ctx, s.m.client, id).ExtractErr(); err != nil {
		return s.m.explain(err, "lock "+s.lockName(name))
	}
	return nil
}

// secretID is the id at the end of a secret href.
func secretID(ref string) string {
	return ref[strings.LastIndex(ref, "/")+1:]
}
