package acme

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"time"

	"github.com/terminator-proxy/terminator/certs"
)

// maintainOne brings e up to date and returns when it next needs work.
func (m *Manager) maintainOne(ctx context.Context, e *entry) time.Time {
	now := time.Now()
	if !now.Before(e.pollAt) {
		e.pollAt = now.Add(m.opts.Check)
		m.reread(ctx, e, now)
	}
	if (e.placeholder || !now.Before(e.renewAt)) && !now.Before(e.retryAt) {
		m.obtain(ctx, e)
		m.status(e)
	}
	if !e.placeholder && !now.Before(e.ocspAt) {
		m.staple(ctx, e)
	}
	next := e.pollAt
	for _, t := range []time.Time{e.retryAt, e.ocspAt} {
		if t.After(now) && t.Before(next) {
			next = t
		}
	}
	if !e.placeholder && e.renewAt.After(now) && e.renewAt.Before(next) {
		next = e.renewAt
	}
	return next
}

// reread takes a newer certificate another instance stored.
func (m *Manager) reread(ctx context.Context, e *entry, now time.Time) {
	data, err := m.store.Load(ctx, certKey(e.names))
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		m.log.Warn("ACME store unreadable", "ref", e.ref, "err", err)
		return
	}
	if string(data) == string(e.stored) {
		return
	}
	old := e.bundle
	if err := m.adopt(e, data, now); err != nil {
		m.log.Warn("stored ACME certificate unusable", "ref", e.ref, "err", err)
		return
	}
	if e.bundle != old {
		m.log.Info("ACME certificate taken from the store", "ref", e.ref, "not_after", e.bundle.NotAfter)
		e.lastErr, e.failures, e.retryAt = nil, 0, time.Time{}
		m.status(e)
		m.notify()
	}
}

// adopt makes data (a stored key and chain) e's certificate if it covers
// e's names, has not expired and is newer than the one served.
func (m *Manager) adopt(e *entry, data []byte, now time.Time) error {
	b, err := certs.ParsePEM(e.ref, data, nil)
	if err != nil {
		return err
	}
	if err := covers(b, e.names); err != nil {
		return err
	}
	if !now.Before(b.NotAfter) {
		return fmt.Errorf("expired at %s", b.NotAfter.Format(time.RFC3339))
	}
	if !e.placeholder && e.bundle != nil && !b.NotAfter.After(e.bundle.NotAfter) {
		e.stored = data
		return nil // not newer than what is served
	}
	m.setBundle(e, b)
	e.placeholder = false
	e.stored = data
	e.renewAt = renewAt(b)
	e.ocspAt = time.Time{}
	return nil
}

// covers checks that b serves every name.
func covers(b *certs.Bundle, names []string) error {
	leaf := b.Leaf()
	for _, n := range names {
		if leaf.VerifyHostname(n) != nil {
			return fmt.Errorf("the stored certificate does not cover %s", n)
		}
	}
	return nil
}

// renewAt is two thirds into the certificate's lifetime, minus up to 2%
// jitter so that a fleet's names do not all renew in the same second.
func renewAt(b *certs.Bundle) time.Time {
	life := b.NotAfter.Sub(b.NotBefore)
	return b.NotBefore.Add(life*2/3 - time.Duration(rand.Float64()*0.02*float64(life)))
}

// obtain issues a certificate for e under the store's lock for its names,
// unless another instance holds the lock (its result is read at the next
// poll) or has already stored a fresh one.
func (m *Manager) obtain(ctx context.Context, e *entry) {
	now := time.Now()
	lock := certKey(e.names)
	ok, err := m.store.TryLock(ctx, lock, m.opts.Owner, lockTTL)
	if err != nil {
		m.failed(e, fmt.Errorf("taking the issuance lock: %w", err), now)
		return
	}
	if !ok {
		// Another instance is issuing: look again soon.
		e.pollAt = now.Add(min(m.opts.Check, 2*time.Second))
		e.retryAt = now.Add(min(m.opts.Check, 10*time.Second))
		return
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := m.store.Unlock(uctx, lock, m.opts.Owner); err != nil {
			m.log.Warn("releasing the ACME issuance lock", "ref", e.ref, "err", err)
		}
	}()
	m.reread(ctx, e, now) // someone may have finished while we waited
	if !e.placeholder && now.Before(e.renewAt) {
		return
	}
	octx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	data, err := m.issue(octx, e.names)
	if m.opts.OnOrder != nil {
		m.opts.OnOrder(e.names, err)
	}
	if err != nil {
		m.failed(e, err, now)
		return
	}
	if err := m.store.Store(ctx, certKey(e.names), data); err != nil {
		// Serve it anyway; the next renewal stores again.
		m.log.Error("storing the new ACME certificate", "ref", e.ref, "err", err)
	}
	if err := m.adopt(e, data, time.Now()); err != nil {
		m.failed(e, fmt.Errorf("the CA's certificate: %w", err), now)
		return
	}
	m.log.Info("ACME certificate obtained", "ref", e.ref, "names", e.names, "not_after", e.bundle.NotAfter, "renew_at", e.renewAt)
	e.lastErr, e.failures, e.retryAt, e.staleSince = nil, 0, time.Time{}, time.Time{}
	m.notify()
}

// failed records an attempt that failed and schedules the next one: a
// doubling backoff from a minute (a twentieth of a short certificate's
// lifetime) up to an hour.
func (m *Manager) failed(e *entry, err error, now time.Time) {
	if e.staleSince.IsZero() {
		e.staleSince = now
	}
	e.failures++
	e.lastErr = err
	base := time.Minute
	if !e.placeholder {
		if life := e.bundle.NotAfter.Sub(e.bundle.NotBefore) / 20; life < base {
			base = max(life, time.Second)
		}
	}
	wait := min(base<<min(e.failures-1, 10), time.Hour)
	e.retryAt = now.Add(wait)
	m.log.Error("ACME certificate not obtained; the current one keeps serving", "ref", e.ref, "attempt", e.failures,
		"retry_in", wait.Round(time.Second), "err", err)
}
