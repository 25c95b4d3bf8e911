package vault

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/terminator-proxy/terminator/certs"
)

// Changed implements certs.Watcher.
func (m *Manager) Changed() <-chan struct{} { return m.changed }

// Watch implements certs.Watcher: the refs of the serving snapshot. Cached
// entries of refs no longer used are dropped.
func (m *Manager) Watch(refs []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.watched = map[string]bool{}
	for _, r := range refs {
		if strings.HasPrefix(r, "vault:") || strings.HasPrefix(r, "vault-pki:") {
			m.watched[r] = true
		}
	}
	for r := range m.entries {
		if !m.watched[r] {
			delete(m.entries, r)
		}
	}
}

func (m *Manager) notify() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// renewAt is two thirds into the certificate's lifetime, ±5% jitter.
func renewAt(b *certs.Bundle) time.Time {
	life := b.NotAfter.Sub(b.NotBefore)
	jitter := time.Duration((rand.Float64() - 0.5) * 0.1 * float64(life))
	return b.NotBefore.Add(life*2/3 + jitter)
}

// Run keeps the token alive and the references current until ctx is done,
// and returns once its goroutines have stopped.
func (m *Manager) Run(ctx context.Context) {
	defer m.http.CloseIdleConnections()
	defer m.wg.Wait()
	tokenDone := m.watchToken(ctx, m.initial)
	tick := time.NewTimer(m.jittered())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tokenDone:
			tokenDone = m.reloginLoop(ctx)
		case <-tick.C:
			m.check(ctx)
			tick.Reset(m.nextCheck())
		}
	}
}

func (m *Manager) jittered() time.Duration {
	return m.opts.Refresh + time.Duration((rand.Float64()-0.5)*0.2*float64(m.opts.Refresh))
}

// nextCheck is the next KV poll, or sooner when a PKI renewal is due.
func (m *Manager) nextCheck() time.Duration {
	d := m.jittered()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.entries {
		if !e.renewAt.IsZero() {
			wait := time.Until(e.renewAt)
			if e.lastErr != nil {
				wait = min(wait, 5*time.Second) // retry failed renewals sooner
			}
			d = min(d, max(wait, 100*time.Millisecond))
		}
	}
	return d
}

// check re-reads KV refs whose version moved and renews due PKI refs. Any
// success that changes a bundle notifies the data plane; failures keep the
// old bundle and are reported.
func (m *Manager) check(ctx context.Context) {
	m.mu.Lock()
	refs := make([]string, 0, len(m.watched))
	for r := range m.watched {
		refs = append(refs, r)
	}
	m.mu.Unlock()
	slices.Sort(refs)
	changed := false
	for _, ref := range refs {
		m.mu.Lock()
		old := m.entries[ref]
		m.mu.Unlock()
		moved := false
		var probeErr error
		if old != nil && old.bundle != nil && strings.HasPrefix(ref, "vault:") {
			moved, probeErr = m.kvMoved(ctx, ref, old)
		}
		if probeErr != nil {
			// Vault cannot say whether the secret moved: what is served
			// may be stale, and is reported so (as a failed fetch is).
			m.stale(ref, old, &certs.RefError{Ref: ref, Err: probeErr})
			continue
		}
		due := old == nil || old.bundle == nil || moved || (!old.renewAt.IsZero() && time.Now().After(old.renewAt))
		if !due {
			m.fresh(old)
			m.report(ref, old, nil)
			continue
		}
		e, err := m.fetch(ctx, ref)
		if err != nil {
			m.stale(ref, old, err)
			continue
		}
		if old == nil || old.bundle == nil || !bytes.Equal(e.bundle.TLS.Certificate[0], old.bundle.TLS.Certificate[0]) {
			changed = true
		}
		m.report(ref, e, nil)
	}
	if changed {
		m.notify()
	}
}

// stale records and reports that ref could not be refreshed; its last
// good bundle, if any, keeps serving.
func (m *Manager) stale(ref string, old *entry, err error) {
	m.mu.Lock()
	if old != nil {
		if old.lastErr == nil {
			old.staleSince = time.Now()
		}
		old.lastErr = err
	}
	m.mu.Unlock()
	m.report(ref, old, err)
}

// fresh clears a ref's stale state once Vault answers for it again.
func (m *Manager) fresh(e *entry) {
	m.mu.Lock()
	e.lastErr, e.staleSince = nil, time.Time{}
	m.mu.Unlock()
}

// kvMoved reports whether a KV secret has a new version (v2: metadata
// current_version; v1: a new data checksum). An error means Vault could
// not tell (unreachable, sealed, denied, or the secret is gone).
func (m *Manager) kvMoved(ctx context.Context, ref string, old *entry) (bool, error) {
	r, err := parseKV(ref)
	if err != nil {
		return false, err
	}
	if i := strings.Index(r.path, "/data/"); i > 0 {
		path := r.path[:i] + "/metadata/" + r.path[i+len("/data/"):]
		var md *api.Secret
		err := m.call(ctx, func() error {
			var err error
			md, err = m.client.Logical().ReadWithContext(ctx, path)
			return err
		})
		if err != nil {
			return false, explain(err, path)
		}
		if md == nil || md.Data == nil {
			return false, fmt.Errorf("%w: no secret metadata at %s (deleted?)", certs.ErrNotFound, path)
		}
		return fmt.Sprint(md.Data["current_version"]) != old.version, nil
	}
	_, v, err := m.kvFields(ctx, r.path)
	if err != nil {
		return false, err
	}
	return v != old.version, nil
}

// report logs and exports the state of a reference. A PKI certificate that
// cannot be renewed is the loudest alert: it will stop being valid.
func (m *Manager) report(ref string, e *entry, err error) {
	var notAfter, since time.Time
	if e != nil && e.bundle != nil {
		notAfter, since = e.bundle.NotAfter, e.staleSince
	}
	if err != nil {
		level := "serving the last good bundle"
		if strings.HasPrefix(ref, "vault-pki:") {
			m.log.Error("VAULT PKI CERTIFICATE CANNOT BE RENEWED; it stops being valid at not_after", "ref", ref, "err", err, "stale_since", since, "not_after", notAfter)
		} else {
			m.log.Warn("vault reference is stale; "+level, "ref", ref, "err", err, "stale_since", since, "not_after", notAfter)
		}
	}
	if m.opts.OnStatus != nil {
		m.opts.OnStatus(ref, err, since, notAfter)
	}
}

// watchToken renews the login token with the api's lifetime watcher and
// returns a channel closed when renewal is no longer possible (nil when the
// token does not expire).
func (m *Manager) watchToken(ctx context.Context, s *api.Secret) <-chan struct{} {
	if s == nil || s.Auth == nil {
		return nil
	}
	w, err := m.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: s})
	if err != nil {
		m.log.Warn("vault: cannot watch the token's lifetime", "err", err)
		return nil
	}
	done := make(chan struct{})
	m.wg.Add(2)
	go func() { defer m.wg.Done(); w.Start() }()
	go func() {
		defer m.wg.Done()
		defer close(done)
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-w.DoneCh():
				if err != nil {
					m.log.Warn("vault: token renewal stopped; logging in again", "err", err)
				}
				return
			case <-w.RenewCh():
				m.log.Debug("vault: token renewed")
			}
		}
	}()
	return done
}

// reloginLoop logs in again, backing off on failure, and watches the new
// token.
func (m *Manager) reloginLoop(ctx context.Context) <-chan struct{} {
	backoff := time.Second
	for {
		s, err := m.login(ctx)
		if err == nil {
			m.log.Info("vault: logged in")
			return m.watchToken(ctx, s)
		}
		m.log.Error("vault: login failed; retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Minute)
	}
}
