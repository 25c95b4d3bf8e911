package upstream

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// DialFunc dials network/addr with d's timeouts and keep-alives.
type DialFunc func(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error)

// PlainDial is d.DialContext.
func PlainDial(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	return d.DialContext(ctx, network, addr)
}

// Key identifies an HTTP/1.1 Pool: member connections are shared by every
// route with the same connect and inactivity timeouts, PROXY and TLS
// settings.
type Key struct {
	Connect, Idle time.Duration
	// ProxyVersion (1 or 2) sends a PROXY protocol header on each member
	// connection; such connections carry one client's address, so they are
	// never reused for another request.
	ProxyVersion byte
	// TLSKey identifies the TLS settings of a re-encrypting pool ("": none).
	TLSKey string
}

func (k Key) tlsKey() string { return k.TLSKey }

// H2Key identifies an H2Pool.
type H2Key struct {
	Connect, Idle time.Duration
	TLSKey        string // "" for h2c
	H2C           bool
}

func (k H2Key) tlsKey() string { return k.TLSKey }

// Registry holds one pool per key, made on first use, for its own life,
// so member connections survive reloads. It is safe for concurrent use.
type Registry[K interface {
	comparable
	tlsKey() string
}, P interface{ CloseIdle() }] struct {
	mu    sync.Mutex
	byKey map[K]P
	make  func(K, *tls.Config) P
}

// NewPools returns the registry of HTTP/1.1 pools: their connections are
// dialed with dial, and at most maxIdle idle ones are kept per member.
func NewPools(dial DialFunc, maxIdle int) *Registry[Key, *Pool] {
	return &Registry[Key, *Pool]{byKey: map[Key]*Pool{}, make: func(k Key, cfg *tls.Config) *Pool {
		return newPool(k, cfg, dial, maxIdle)
	}}
}

// NewH2Pools returns the registry of HTTP/2 pools: their connections are
// dialed with dial and bound response heads to maxHead bytes; maxIdle is
// for the HTTP/1.1 connections of members that decline h2.
func NewH2Pools(dial DialFunc, maxIdle int, maxHead uint32) *Registry[H2Key, *H2Pool] {
	return &Registry[H2Key, *H2Pool]{byKey: map[H2Key]*H2Pool{}, make: func(k H2Key, cfg *tls.Config) *H2Pool {
		return newH2Pool(k, cfg, dial, maxIdle, maxHead)
	}}
}

// Get returns the pool of k, made with cfg (nil: no TLS) on first use.
func (r *Registry[K, P]) Get(k K, cfg *tls.Config) P {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.byKey[k]; ok {
		return p
	}
	p := r.make(k, cfg)
	r.byKey[k] = p
	return p
}

// RetainTLS closes and forgets the pools of TLS settings (by key) that no
// snapshot uses any more, so changing a pool's certificates does not leak
// them. Call it after each reload with the keys in use.
func (r *Registry[K, P]) RetainTLS(keep map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, p := range r.byKey {
		if t := k.tlsKey(); t != "" && !keep[t] {
			p.CloseIdle()
			delete(r.byKey, k)
		}
	}
}

// CloseIdle closes every pool's idle connections (at shutdown).
func (r *Registry[K, P]) CloseIdle() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.byKey {
		p.CloseIdle()
	}
}
