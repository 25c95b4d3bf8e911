package barbican

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/keymanager/v1/containers"
	"github.com/gophercloud/gophercloud/v2/openstack/keymanager/v1/secrets"
)

// Changed implements certs.Watcher. Barbican secrets are immutable, so
// nothing is ever reported changed; a new certificate means a new ref.
func (m *Manager) Changed() <-chan struct{} { return m.changed }

// Watch implements certs.Watcher: it records the refs in use and drops
// cached bundles of refs no longer used.
func (m *Manager) Watch(refs []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.watched = map[string]bool{}
	for _, r := range refs {
		if _, _, err := parseRef(r); err == nil {
			m.watched[r] = true
		}
	}
	for key := range m.entries {
		if !m.watched[strings.TrimPrefix(key, "raw:")] {
			delete(m.entries, key)
		}
	}
}

// Run re-checks the refs in use until ctx is done: a secret that was
// deleted, or whose ACL no longer lets terminator read it, is reported,
// and its cached bundle keeps serving until the operator changes the ref.
func (m *Manager) Run(ctx context.Context) {
	for {
		d := m.opts.Recheck + time.Duration((rand.Float64()-0.5)*0.2*float64(m.opts.Recheck))
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
			m.recheck(ctx)
		}
	}
}

func (m *Manager) recheck(ctx context.Context) {
	m.mu.Lock()
	refs := make([]string, 0, len(m.watched))
	for r := range m.watched {
		refs = append(refs, r)
	}
	m.mu.Unlock()
	slices.Sort(refs)
	for _, ref := range refs {
		kind, id, err := parseRef(ref)
		if err != nil {
			continue
		}
		if kind == "secrets" {
			_, err = secrets.Get(ctx, m.client, id).Extract()
		} else {
			_, err = containers.Get(ctx, m.client, id).Extract()
		}
		m.mu.Lock()
		e := m.entries[ref]
		if e == nil {
			e = m.entries["raw:"+ref]
		}
		var since time.Time
		if e != nil {
			if err != nil && e.staleSince.IsZero() {
				e.staleSince = time.Now()
			} else if err == nil {
				e.staleSince = time.Time{}
			}
			since = e.staleSince
		}
		m.mu.Unlock()
		if err != nil {
			err = m.explain(err, ref)
			m.log.Warn("barbican reference no longer readable; serving the cached bundle until the ref is changed", "ref", ref, "err", err, "since", since)
		}
		if m.opts.OnStatus != nil {
			m.opts.OnStatus(ref, err, since)
		}
	}
}
