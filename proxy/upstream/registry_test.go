package upstream

import (
	"crypto/tls"
	"testing"
	"time"
)

// TestRegistryKeepsPoolsPerKeyAndDropsUnusedTLS: one pool per key for the
// registry's life; RetainTLS forgets (and closes) only the pools of TLS
// settings no longer in use, never plain ones.
func TestRegistryKeepsPoolsPerKeyAndDropsUnusedTLS(t *testing.T) {
	r := NewPools(PlainDial, 8)
	plain := r.Get(Key{Connect: time.Second}, nil)
	a := r.Get(Key{Connect: time.Second, TLSKey: "a"}, &tls.Config{})
	b := r.Get(Key{Connect: time.Second, TLSKey: "b"}, &tls.Config{})
	if r.Get(Key{Connect: time.Second}, nil) != plain || r.Get(Key{Connect: time.Second, TLSKey: "a"}, nil) != a {
		t.Fatal("the same key made a second pool")
	}
	if r.Get(Key{Connect: 2 * time.Second}, nil) == plain {
		t.Fatal("different timeouts share a pool")
	}
	r.RetainTLS(map[string]bool{"a": true})
	if r.Get(Key{Connect: time.Second, TLSKey: "a"}, nil) != a || r.Get(Key{Connect: time.Second}, nil) != plain {
		t.Fatal("RetainTLS dropped a pool in use")
	}
	if r.Get(Key{Connect: time.Second, TLSKey: "b"}, &tls.Config{}) == b {
		t.Fatal("RetainTLS kept the pool of unused TLS settings")
	}

	h := NewH2Pools(PlainDial, 8, 1<<16)
	if p := h.Get(H2Key{H2C: true}, nil); p.H1() != nil {
		t.Fatal("an h2c pool has an HTTP/1.1 fallback")
	}
	cfg := &tls.Config{NextProtos: []string{"h2", "http/1.1"}}
	p := h.Get(H2Key{TLSKey: "t"}, cfg)
	if p.H1() == nil || len(p.H1().tls.NextProtos) != 1 || p.H1().tls.NextProtos[0] != "http/1.1" || len(cfg.NextProtos) != 2 {
		t.Fatal("the HTTP/1.1 fallback of a TLS pool must offer http/1.1 alone, leaving the pool's config as it was")
	}
}
