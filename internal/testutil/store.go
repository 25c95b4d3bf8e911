package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"testing"
	"time"
)

// SharedStore is the ACME manager's store contract (acme.Store), repeated
// here so that each implementation's package can run CheckStore without
// importing the manager.
type SharedStore interface {
	Load(ctx context.Context, key string) ([]byte, error)
	Store(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	TryLock(ctx context.Context, name, owner string, ttl time.Duration) (bool, error)
	Unlock(ctx context.Context, name, owner string) error
}

// CheckStore runs the contract every store must keep against s: values
// round-trip and are replaced whole, missing keys are fs.ErrNotExist,
// deletes are idempotent, and a lock has one holder at a time, also when
// owners race for it, and is free again after Unlock or its ttl.
// open returns another handle on the same store (another instance).
func CheckStore(t *testing.T, s SharedStore, open func() SharedStore) {
	t.Helper()
	ctx := context.Background()
	key := fmt.Sprintf("certificates/t%d.example", time.Now().UnixNano())
	if _, err := s.Load(ctx, key); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing key: %v, want fs.ErrNotExist", err)
	}
	// 6 KiB, larger than a certificate chain with its key, within
	// Barbican's default max_allowed_secret_in_bytes (10,000); binary-safe.
	big := bytes.Repeat([]byte("0123456789abcdef"), 384)
	big[7] = 0
	for _, v := range [][]byte{[]byte("first"), big} {
		if err := s.Store(ctx, key, v); err != nil {
			t.Fatalf("Store: %v", err)
		}
		got, err := open().Load(ctx, key)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("Load after Store: %d bytes, %v; want %d bytes", len(got), err, len(v))
		}
	}
	for range 2 {
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if _, err := s.Load(ctx, key); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load after Delete: %v, want fs.ErrNotExist", err)
	}

	lock := fmt.Sprintf("certificates/l%d.example", time.Now().UnixNano())
	a, b := s, open()
	if ok, err := a.TryLock(ctx, lock, "a", time.Minute); !ok || err != nil {
		t.Fatalf("a's TryLock on a free lock: %v %v", ok, err)
	}
	if ok, err := b.TryLock(ctx, lock, "b", time.Minute); ok || err != nil {
		t.Fatalf("b took a lock a holds: %v %v", ok, err)
	}
	if err := b.Unlock(ctx, lock, "b"); err != nil {
		t.Fatalf("b's Unlock of a's lock: %v", err)
	}
	if ok, _ := b.TryLock(ctx, lock, "b", time.Minute); ok {
		t.Fatal("b's Unlock released a's lock")
	}
	if err := a.Unlock(ctx, lock, "a"); err != nil {
		t.Fatalf("a's Unlock: %v", err)
	}
	if ok, err := b.TryLock(ctx, lock, "b", 2*time.Second); !ok || err != nil {
		t.Fatalf("b's TryLock after a's Unlock: %v %v", ok, err)
	}
	time.Sleep(2500 * time.Millisecond)
	if ok, err := a.TryLock(ctx, lock, "a", time.Minute); !ok || err != nil {
		t.Fatalf("a's TryLock after b's lock expired: %v %v", ok, err)
	}
	_ = a.Unlock(ctx, lock, "a")

	// Six instances race for one lock, three rounds: one wins each and
	// releases it through its own handle.
	race := lock + "-race"
	for round := range 3 {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var winners []int
		handles := make([]SharedStore, 6)
		for i := range handles {
			handles[i] = open()
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := handles[i].TryLock(ctx, race, fmt.Sprint("owner-", i), time.Minute)
				if err != nil {
					t.Errorf("TryLock: %v", err)
				}
				if ok {
					mu.Lock()
					winners = append(winners, i)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("round %d: %d owners hold the lock (%v), want 1", round, len(winners), winners)
		}
		if err := handles[winners[0]].Unlock(ctx, race, fmt.Sprint("owner-", winners[0])); err != nil {
			t.Fatal(err)
		}
	}
}
