package acme

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/terminator-proxy/terminator/certs"
)

// Challenge types the manager can answer.
const (
	HTTP01    = "http-01"
	TLSALPN01 = "tls-alpn-01"
)

// Options configure a Manager.
type Options struct {
	// Directory is the CA's ACME directory URL.
	Directory string
	// Email is the account's contact, if any.
	Email string
	// EAB binds the account to an existing account at the CA, for CAs
	// that require it.
	EAB *EAB
	// HTTPClient talks to the CA (and OCSP responders); it must trust the
	// CA's TLS certificate. Default: a client with 30 s timeouts.
	HTTPClient *http.Client
	// Challenges are the types to answer, in order of preference;
	// default TLS-ALPN-01 then HTTP-01.
	Challenges []string
	// KeyType of certificate keys: "ecdsa-p256" (default), "ecdsa-p384",
	// "rsa-2048" or "rsa-4096".
	KeyType string
	// Store keeps the account, certificates, challenges and locks.
	Store Store
	// Check is how often the store is re-read for certificates other
	// instances stored and renewals are considered; default 1 minute.
	Check time.Duration
	// Owner names this instance in the store's locks; default host name,
	// process id and a random suffix.
	Owner  string
	Logger *slog.Logger
	// OnOrder, if set, is told the outcome of every order.
	OnOrder func(names []string, err error)
	// OnStatus, if set, is told about every reference after each check:
	// err is why its certificate is not current (nil when it is),
	// notAfter when the certificate being served expires.
	OnStatus func(ref string, err error, staleSince, notAfter time.Time)
}

// EAB is an external account binding (RFC 8555 §7.3.4).
type EAB struct {
	KeyID   string
	HMACKey []byte
}

// lockTTL bounds how long a crashed instance's lock keeps the others
// from issuing.
const lockTTL = 10 * time.Minute

// Manager serves acme:// references. Create it with New and run Run in a
// goroutine the caller owns; it implements certs.Manager, certs.Watcher
// and the data plane's challenge responder.
type Manager struct {
	opts    Options
	log     *slog.Logger
	store   Store
	changed chan struct{}
	wake    chan struct{}
	chal    challenges
	acct    account

	mu      sync.Mutex // guards the fields below
	entries map[string]*entry
	watched map[string]bool
}

// entry is the state of one reference.
type entry struct {
	ref         string
	names       []string
	bundle      *certs.Bundle
	placeholder bool      // bundle is the self-signed stand-in
	stored      []byte    // the store's value bundle was built from
	renewAt     time.Time // when to renew; zero for a placeholder
	pollAt      time.Time // when to re-read the store
	retryAt     time.Time // no issuance attempt before this
	failures    int
	lastErr     error
	staleSince  time.Time
	ocspAt      time.Time // when to refresh the staple
}

// New returns a manager; nothing is contacted until Run or a reference asks.
func New(o Options) (*Manager, error) {
	if o.Directory == "" {
		return nil, errors.New("acme: no directory URL")
	}
	if o.Store == nil {
		return nil, errors.New("acme: no store")
	}
	if len(o.Challenges) == 0 {
		o.Challenges = []string{TLSALPN01, HTTP01}
	}
	for _, c := range o.Challenges {
		if c != HTTP01 && c != TLSALPN01 {
			return nil, fmt.Errorf("acme: unknown challenge type %q (%s or %s)", c, HTTP01, TLSALPN01)
		}
	}
	if _, err := newKey(o.KeyType, true); err != nil {
		return nil, err
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Check <= 0 {
		o.Check = time.Minute
	}
	if o.Owner == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		o.Owner = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	m := &Manager{opts: o, log: o.Logger, store: o.Store, changed: make(chan struct{}, 1), wake: make(chan struct{}, 1),
		entries: map[string]*entry{}, watched: map[string]bool{}}
	m.chal.init(o.Store, o.Logger)
	return m, nil
}

// Bundle implements certs.Manager. It never waits for a CA: it returns the
// certificate held or stored for ref, else a placeholder while Run obtains
// one.
func (m *Manager) Bundle(ctx context.Context, ref string) (*certs.Bundle, error) {
	names, err := parseRef(ref)
	if err != nil {
		return nil, &certs.RefError{Ref: ref, Err: err}
	}
	if b := m.current(ref); b != nil {
		return b, nil
	}
	e := &entry{ref: ref, names: names}
	data, err := m.store.Load(ctx, certKey(names))
	switch {
	case err == nil:
		if err = m.adopt(e, data, time.Now()); err != nil {
			m.log.Warn("stored ACME certificate unusable; obtaining a new one", "ref", ref, "err", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		m.log.Warn("ACME store unreadable; serving a placeholder until it answers", "ref", ref, "err", err)
	}
	if e.bundle == nil {
		if e.bundle, err = placeholder(ref, names); err != nil {
			return nil, &certs.RefError{Ref: ref, Err: err}
		}
		e.placeholder = true
		m.log.Info("no ACME certificate yet; serving a placeholder while one is obtained", "ref", ref)
	}
	m.mu.Lock()
	if old := m.entries[ref]; old != nil {
		e = old // another caller got there first
	} else {
		m.entries[ref] = e
	}
	b := e.bundle
	m.mu.Unlock()
	m.poke()
	return b, nil
}

// current returns the bundle served for ref, if any.
func (m *Manager) current(ref string) *certs.Bundle {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.entries[ref]; e != nil {
		return e.bundle
	}
	return nil
}

// setBundle replaces e's bundle; Bundle reads it concurrently.
func (m *Manager) setBundle(e *entry, b *certs.Bundle) {
	m.mu.Lock()
	e.bundle = b
	m.mu.Unlock()
}

// Secret implements certs.Manager: ACME issues certificates only.
func (m *Manager) Secret(_ context.Context, ref string) ([]byte, error) {
	return nil, &certs.RefError{Ref: ref, Err: fmt.Errorf("%w: acme references name certificates, not CA bundles or CRLs", certs.ErrUnsupportedRef)}
}

// Changed implements certs.Watcher.
func (m *Manager) Changed() <-chan struct{} { return m.changed }

// Watch implements certs.Watcher: the acme refs of the serving snapshot
// are kept current; the others are forgotten.
func (m *Manager) Watch(refs []string) {
	m.mu.Lock()
	m.watched = map[string]bool{}
	for _, r := range refs {
		if strings.HasPrefix(r, "acme:") {
			m.watched[r] = true
		}
	}
	for r := range m.entries {
		if !m.watched[r] {
			delete(m.entries, r)
		}
	}
	m.mu.Unlock()
	m.poke()
}

func (m *Manager) notify() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run keeps the watched references' certificates current until ctx is
// done: it re-reads the store, obtains and renews, and refreshes staples.
// It returns when its work has stopped.
func (m *Manager) Run(ctx context.Context) {
	defer m.opts.HTTPClient.CloseIdleConnections()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		case <-timer.C:
		}
		next := m.maintain(ctx)
		timer.Reset(max(time.Until(next), 100*time.Millisecond))
	}
}

// maintain does what is due for every watched reference and returns when
// something is due next.
func (m *Manager) maintain(ctx context.Context) time.Time {
	now := time.Now()
	next := now.Add(m.opts.Check)
	m.mu.Lock()
	var due []*entry
	for r := range m.watched {
		if e := m.entries[r]; e != nil {
			due = append(due, e)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(due, func(a, b *entry) int { return strings.Compare(a.ref, b.ref) })
	// Up to maxParallel references at a time: an order waits seconds on
	// the CA, and a hundred names at first start should not queue behind
	// each other. Each entry is touched by one goroutine per round, and
	// the round ends when all have.
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallel)
	for _, e := range due {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t := m.maintainOne(ctx, e)
			mu.Lock()
			if t.Before(next) {
				next = t
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return next
}

// maxParallel bounds the references maintained at once.
const maxParallel = 4

// status reports e to OnStatus.
func (m *Manager) status(e *entry) {
	if m.opts.OnStatus == nil {
		return
	}
	var notAfter time.Time
	if !e.placeholder {
		notAfter = e.bundle.NotAfter
	}
	m.opts.OnStatus(e.ref, e.lastErr, e.staleSince, notAfter)
}
