package certs

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
)

// Manager fetches certificate material by reference. Implementations must be
// safe for concurrent use and must never log secret material.
type Manager interface {
	// Bundle returns the validated bundle named by ref. Errors wrap a
	// *RefError naming ref.
	Bundle(ctx context.Context, ref string) (*Bundle, error)
	// Secret returns the raw bytes of a secret such as a client CA bundle
	// or a CRL.
	Secret(ctx context.Context, ref string) ([]byte, error)
}

// Watcher is implemented by managers whose referenced material can change
// in place (files, KV versions). The owner calls Watch with the refs of the
// current snapshot after each reload and rebuilds the snapshot when Changed
// fires; notifications are coalesced, never dropped.
type Watcher interface {
	Watch(refs []string)
	Changed() <-chan struct{}
}

// Registry dispatches references to managers by URL scheme. It is itself a
// Manager. Register all managers before first use; the registry is
// read-only afterwards.
type Registry struct {
	byScheme map[string]Manager
	hints    map[string]string // for schemes known but not configured
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byScheme: map[string]Manager{}, hints: map[string]string{}}
}

// Hint sets what a reference of scheme is told when no manager serves it
// (the configuration section it needs, say).
func (r *Registry) Hint(scheme, text string) { r.hints[strings.ToLower(scheme)] = text }

// With returns a new registry with r's managers, and m for scheme.
func (r *Registry) With(scheme string, m Manager) *Registry {
	out := NewRegistry()
	for s, mgr := range r.byScheme {
		out.byScheme[s] = mgr
	}
	for s, h := range r.hints {
		out.hints[s] = h
	}
	out.Register(scheme, m)
	return out
}

// Register makes m handle refs whose scheme is scheme (without "://").
func (r *Registry) Register(scheme string, m Manager) {
	r.byScheme[strings.ToLower(scheme)] = m
}

// Lookup returns the manager for ref.
func (r *Registry) Lookup(ref string) (Manager, error) {
	// The manager parses the reference itself; a known scheme is enough
	// here (a full url.Parse per reference was 5 % of a 100,000-certificate
	// start).
	if scheme, _, ok := strings.Cut(ref, "://"); ok {
		if m, ok := r.byScheme[strings.ToLower(scheme)]; ok {
			return m, nil
		}
	}
	u, err := url.Parse(ref)
	if err != nil {
		return nil, &RefError{Ref: ref, Err: fmt.Errorf("invalid reference: %w", err)}
	}
	m, ok := r.byScheme[strings.ToLower(u.Scheme)]
	if !ok && u.Scheme == "" && u.Path != "" {
		abs, err := filepath.Abs(u.Path)
		if err != nil {
			abs = u.Path
		}
		return nil, &RefError{Ref: ref, Err: fmt.Errorf("%w: a bare path is not a reference; for a file write file://%s", ErrUnsupportedRef, abs)}
	}
	if !ok {
		if h := r.hints[strings.ToLower(u.Scheme)]; h != "" {
			return nil, &RefError{Ref: ref, Err: fmt.Errorf("%w: %s", ErrUnsupportedRef, h)}
		}
		return nil, &RefError{Ref: ref, Err: fmt.Errorf("%w (scheme %q; known: %s)", ErrUnsupportedRef, u.Scheme, strings.Join(r.schemes(), ", "))}
	}
	return m, nil
}

// Bundle implements Manager.
func (r *Registry) Bundle(ctx context.Context, ref string) (*Bundle, error) {
	m, err := r.Lookup(ref)
	if err != nil {
		return nil, err
	}
	b, err := m.Bundle(ctx, ref)
	return b, refErr(ref, err)
}

// Secret implements Manager.
func (r *Registry) Secret(ctx context.Context, ref string) ([]byte, error) {
	m, err := r.Lookup(ref)
	if err != nil {
		return nil, err
	}
	s, err := m.Secret(ctx, ref)
	return s, refErr(ref, err)
}

// Watchers returns the distinct registered managers that implement Watcher.
func (r *Registry) Watchers() []Watcher {
	var out []Watcher
	seen := map[Manager]bool{}
	for _, s := range r.schemes() {
		m := r.byScheme[s]
		if w, ok := m.(Watcher); ok && !seen[m] {
			seen[m] = true
			out = append(out, w)
		}
	}
	return out
}

func (r *Registry) schemes() []string {
	out := make([]string, 0, len(r.byScheme))
	for s := range r.byScheme {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}
