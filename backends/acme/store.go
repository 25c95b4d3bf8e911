package acme

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/terminator-proxy/terminator/internal/atomicfile"
)

// Store keeps what instances share. Keys are slash-separated paths of
// [a-z0-9._,+-] segments (validKey). Implementations must be safe for
// concurrent use; a fleet's instances may call them at the same time.
type Store interface {
	// Load returns the value at key; an error wrapping fs.ErrNotExist
	// when there is none.
	Load(ctx context.Context, key string) ([]byte, error)
	// Store replaces the value at key; a reader sees the old value or the
	// new one, never a mix.
	Store(ctx context.Context, key string, value []byte) error
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// TryLock takes the lock name for owner until ttl has passed, if it
	// is free, expired or already owner's, and reports whether it did.
	// At most one owner holds a lock at a time.
	TryLock(ctx context.Context, name, owner string, ttl time.Duration) (bool, error)
	// Unlock releases name if owner holds it.
	Unlock(ctx context.Context, name, owner string) error
}

// MaxValue bounds every value read from a store: a certificate chain with
// its key is a few KiB.
const MaxValue = 1 << 20

var keyPattern = regexp.MustCompile(`^[a-z0-9._,+-]+(/[a-z0-9._,+-]+)*$`)

// validKey reports whether key is a relative path no store can misread.
func validKey(key string) error {
	if !keyPattern.MatchString(key) {
		return fmt.Errorf("acme: invalid store key %q", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("acme: invalid store key %q", key)
		}
	}
	return nil
}

// LockRecord is how stores that keep locks as values write them.
type LockRecord struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

// Free reports whether owner may take the lock at now.
func (r LockRecord) Free(owner string, now time.Time) bool {
	return r.Owner == "" || r.Owner == owner || !now.Before(r.Expires)
}

// FileStore keeps values as files under a directory: the default, for a
// single instance (or instances sharing a local file system). Locks are
// records taken under flock(2), so processes on one host agree.
type FileStore struct {
	dir string
}

// NewFileStore returns a store rooted at dir, created 0700 at the first
// write.
func NewFileStore(dir string) (*FileStore, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("acme: file store needs an absolute directory, not %q", dir)
	}
	return &FileStore{dir: dir}, nil
}

func (s *FileStore) path(key string) (string, error) {
	if err := validKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, filepath.FromSlash(key)), nil
}

// Load implements Store.
func (s *FileStore) Load(_ context.Context, key string) ([]byte, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err // *fs.PathError wrapping fs.ErrNotExist when missing
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxValue+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxValue {
		return nil, fmt.Errorf("acme: %s is larger than %d bytes", p, MaxValue)
	}
	return data, nil
}

// Store implements Store.
func (s *FileStore) Store(_ context.Context, key string, value []byte) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	return atomicfile.Write(p, value, 0o600)
}

// Delete implements Store.
func (s *FileStore) Delete(_ context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// TryLock implements Store.
func (s *FileStore) TryLock(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	ok := false
	err := s.withLockRecord(name, func(r *LockRecord) bool {
		if !r.Free(owner, time.Now()) {
			return false
		}
		*r = LockRecord{Owner: owner, Expires: time.Now().Add(ttl)}
		ok = true
		return true
	})
	return ok, err
}

// Unlock implements Store.
func (s *FileStore) Unlock(_ context.Context, name, owner string) error {
	return s.withLockRecord(name, func(r *LockRecord) bool {
		if r.Owner != owner {
			return false
		}
		*r = LockRecord{}
		return true
	})
}

// withLockRecord runs f on name's record under an exclusive flock of the
// store's lock file and writes the record back when f says so.
func (s *FileStore) withLockRecord(name string, f func(*LockRecord) bool) error {
	p, err := s.path("locks/" + name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	guard, err := os.OpenFile(filepath.Join(s.dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer guard.Close()
	if err := syscall.Flock(int(guard.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("acme: locking %s: %w", s.dir, err)
	}
	var r LockRecord
	if data, err := os.ReadFile(p); err == nil {
		_ = json.Unmarshal(data, &r) // an unreadable record is a free lock
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if !f(&r) {
		return nil
	}
	data, _ := json.Marshal(r)
	return atomicfile.Write(p, data, 0o600)
}
