package vault

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// KVStore keeps values in a KV version 2 mount, one secret per key with a
// single base64 field "value": the ACME manager's shared store (it
// satisfies acme.Store). Locks are records written with check-and-set, so
// two instances never both take one.
//
// The token needs create, read, update on MOUNT/data/PREFIX/* and delete
// on MOUNT/metadata/PREFIX/*.
type KVStore struct {
	m      *Manager
	kv     *api.KVv2
	mount  string
	prefix string
}

// maxStoreValue bounds a value read back (certificates are a few KiB).
const maxStoreValue = 1 << 20

// KVStore returns a store under prefix in the KV v2 mount.
func (m *Manager) KVStore(mount, prefix string) *KVStore {
	mount = strings.Trim(mount, "/")
	return &KVStore{m: m, kv: m.client.KVv2(mount), mount: mount, prefix: strings.Trim(prefix, "/")}
}

func (s *KVStore) path(key string) string { return path.Join(s.prefix, key) }

// Load returns the value at key; an error wrapping fs.ErrNotExist when
// there is none (or its latest version is deleted).
func (s *KVStore) Load(ctx context.Context, key string) ([]byte, error) {
	sec, err := s.get(ctx, key)
	if err != nil {
		return nil, err
	}
	v, ok := sec.Data["value"].(string)
	if !ok {
		return nil, fmt.Errorf("vault: %s/%s has no string field \"value\"", s.mount, s.path(key))
	}
	if base64.StdEncoding.DecodedLen(len(v)) > maxStoreValue {
		return nil, fmt.Errorf("vault: %s/%s is larger than %d bytes", s.mount, s.path(key), maxStoreValue)
	}
	data, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("vault: %s/%s: value is not base64: %w", s.mount, s.path(key), err)
	}
	return data, nil
}

func (s *KVStore) get(ctx context.Context, key string) (*api.KVSecret, error) {
	var sec *api.KVSecret
	err := s.m.call(ctx, func() error {
		var err error
		sec, err = s.kv.Get(ctx, s.path(key))
		return err
	})
	if errors.Is(err, api.ErrSecretNotFound) {
		return nil, fmt.Errorf("vault: %s/%s: %w", s.mount, s.path(key), fs.ErrNotExist)
	}
	if err != nil {
		return nil, explain(err, s.mount+"/data/"+s.path(key))
	}
	if sec == nil || sec.Data == nil {
		return nil, fmt.Errorf("vault: %s/%s (deleted): %w", s.mount, s.path(key), fs.ErrNotExist)
	}
	return sec, nil
}

// Store writes a new version of key.
func (s *KVStore) Store(ctx context.Context, key string, value []byte) error {
	return s.put(ctx, key, map[string]any{"value": base64.StdEncoding.EncodeToString(value)})
}

func (s *KVStore) put(ctx context.Context, key string, data map[string]any, opts ...api.KVOption) error {
	err := s.m.call(ctx, func() error {
		_, err := s.kv.Put(ctx, s.path(key), data, opts...)
		return err
	})
	if err != nil {
		return explain(err, s.mount+"/data/"+s.path(key))
	}
	return nil
}

// Delete removes every version of key.
func (s *KVStore) Delete(ctx context.Context, key string) error {
	err := s.m.call(ctx, func() error { return s.kv.DeleteMetadata(ctx, s.path(key)) })
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return explain(err, s.mount+"/metadata/"+s.path(key))
	}
	return nil
}

// lockRecord is a lock's value: who holds it and until when.
type lockRecord struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

// TryLock takes locks/NAME for owner until ttl passes if it is free,
// expired or owner's: a check-and-set write against the version read, so
// of two instances racing for it one wins and the other is told no.
func (s *KVStore) TryLock(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	rec, version, err := s.readLock(ctx, name)
	if err != nil {
		return false, err
	}
	if rec.Owner != "" && rec.Owner != owner && time.Now().Before(rec.Expires) {
		return false, nil
	}
	return s.writeLock(ctx, name, lockRecord{Owner: owner, Expires: time.Now().Add(ttl)}, version)
}

// Unlock frees locks/NAME if owner holds it.
func (s *KVStore) Unlock(ctx context.Context, name, owner string) error {
	rec, version, err := s.readLock(ctx, name)
	if err != nil || rec.Owner != owner {
		return err
	}
	_, err = s.writeLock(ctx, name, lockRecord{}, version)
	return err
}

// readLock returns the lock's record and the version to write against (0:
// create only).
func (s *KVStore) readLock(ctx context.Context, name string) (lockRecord, int, error) {
	var rec lockRecord
	sec, err := s.get(ctx, "locks/"+name)
	if errors.Is(err, fs.ErrNotExist) {
		// Missing: create only (cas 0). If its latest version was deleted
		// by hand, write over that version, but only if it is still the
		// latest and still deleted: a lock written since must not be
		// overwritten, and the check-and-set sees to that.
		md, merr := s.kv.GetMetadata(ctx, s.path("locks/"+name))
		if merr == nil && md != nil && md.CurrentVersion > 0 {
			if v, ok := md.Versions[strconv.Itoa(md.CurrentVersion)]; ok && (!v.DeletionTime.IsZero() || v.Destroyed) {
				return rec, md.CurrentVersion, nil
			}
		}
		return rec, 0, nil
	}
	if err != nil {
		return rec, 0, err
	}
	raw, _ := json.Marshal(sec.Data)
	_ = json.Unmarshal(raw, &rec) // an unreadable record is a free lock
	return rec, sec.VersionMetadata.Version, nil
}

// writeLock writes rec if the lock is still at version; a lost race
// reports false.
func (s *KVStore) writeLock(ctx context.Context, name string, rec lockRecord, version int) (bool, error) {
	err := s.m.call(ctx, func() error {
		_, err := s.kv.Put(ctx, s.path("locks/"+name), map[string]any{"owner": rec.Owner, "expires": rec.Expires}, api.WithCheckAndSet(version))
		return err
	})
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest && strings.Contains(strings.Join(re.Errors, " "), "check-and-set") {
		return false, nil
	}
	if err != nil {
		return false, explain(err, s.mount+"/data/"+s.path("locks/"+name))
	}
	return true, nil
}
