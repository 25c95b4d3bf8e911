package sni

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/terminator-proxy/terminator/certs"
)

// ErrUnknownServerName is returned (wrapped) by a strict store for a server
// name that matches no certificate.
var ErrUnknownServerName = errors.New("sni: no certificate for server name")

// Store maps server names to certificates. It is immutable after NewStore
// returns and safe for concurrent use.
type Store struct {
	exact    map[string][]*tls.Certificate
	wildcard map[string][]*tls.Certificate // keyed by the suffix after "*."
	def      []*tls.Certificate
	strict   bool
	bundles  []*certs.Bundle
}

// NewStore indexes bundles by their names. def is served when the client
// sends no SNI or, unless strict, a name nothing matches; when def is nil the
// first SNI bundle is the default (as haproxy's crt-list does). Several
// bundles for one name are kept, ECDSA before RSA.
func NewStore(def *certs.Bundle, sniBundles []*certs.Bundle, strict bool) (*Store, error) {
	all := make([]*certs.Bundle, 0, 1+len(sniBundles))
	seen := make(map[*certs.Bundle]bool, 1+len(sniBundles)) // a linear check was quadratic: 1.7 s at 100,000
	if def != nil {
		all = append(all, def)
		seen[def] = true
	}
	for _, b := range sniBundles {
		if !seen[b] {
			seen[b] = true
			all = append(all, b)
		}
	}
	if len(all) == 0 {
		return nil, errors.New("sni: no certificate to serve")
	}
	s := &Store{
		exact:    make(map[string][]*tls.Certificate, len(all)),
		wildcard: map[string][]*tls.Certificate{},
		strict:   strict,
		bundles:  all,
	}
	for _, b := range all {
		for _, name := range b.Names {
			if suffix, ok := strings.CutPrefix(name, "*."); ok {
				s.wildcard[suffix] = addCandidate(s.wildcard[suffix], b.TLS)
			} else {
				s.exact[name] = addCandidate(s.exact[name], b.TLS)
			}
		}
	}
	// The default's alternates (an RSA twin of an ECDSA default, say) serve
	// clients that cannot use the default itself.
	s.def = []*tls.Certificate{all[0].TLS}
	for _, name := range all[0].Names {
		for _, c := range s.lookupName(name) {
			s.def = addCandidate(s.def, c)
		}
	}
	s.def = append(s.def[:1:1], sortedByKey(s.def[1:])...)
	s.withLeaves()
	return s, nil
}

// withLeaves gives the certificates of every name with a choice a parsed
// Leaf: choose asks SupportsCertificate, which would otherwise parse the
// certificate on each handshake. Bundles keep no parsed leaf (see
// certs.Bundle), so copies are made, once per certificate, for those names
// only.
func (s *Store) withLeaves() {
	leafed := map[*tls.Certificate]*tls.Certificate{}
	fill := func(cands []*tls.Certificate) {
		if len(cands) < 2 {
			return
		}
		for i, c := range cands {
			if c.Leaf != nil {
				continue // already a copy with its leaf
			}
			if leafed[c] == nil {
				cp := *c
				cp.Leaf, _ = x509.ParseCertificate(c.Certificate[0]) // parsed once by certs.Assemble: cannot fail
				leafed[c] = &cp
			}
			cands[i] = leafed[c]
		}
	}
	for _, cands := range s.exact {
		fill(cands)
	}
	for _, cands := range s.wildcard {
		fill(cands)
	}
	fill(s.def)
}

// Bundles returns the bundles the store serves, the default first. The
// caller must not modify them.
func (s *Store) Bundles() []*certs.Bundle { return s.bundles }

// GetCertificate implements tls.Config.GetCertificate.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := normalize(hello.ServerName)
	if name == "" {
		return choose(s.def, hello), nil
	}
	if cands := s.lookupName(name); cands != nil {
		return choose(cands, hello), nil
	}
	if s.strict {
		return nil, fmt.Errorf("%w %q", ErrUnknownServerName, name)
	}
	return choose(s.def, hello), nil
}

// lookupName finds the candidates for a normalized name: exact first, then
// a wildcard covering exactly one label.
func (s *Store) lookupName(name string) []*tls.Certificate {
	if c, ok := s.exact[name]; ok {
		return c
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		if c, ok := s.wildcard[name[i+1:]]; ok {
			return c
		}
	}
	return nil
}

// choose returns the first candidate the client supports, or the first
// candidate when it supports none (the handshake then fails with the
// client's own complaint).
func choose(cands []*tls.Certificate, hello *tls.ClientHelloInfo) *tls.Certificate {
	if len(cands) == 1 {
		return cands[0]
	}
	for _, c := range cands {
		if hello.SupportsCertificate(c) == nil {
			return c
		}
	}
	return cands[0]
}

// addCandidate adds c keeping the cheaper signature algorithms first:
// Ed25519 and ECDSA before RSA.
func addCandidate(list []*tls.Certificate, c *tls.Certificate) []*tls.Certificate {
	if slices.Contains(list, c) {
		return list
	}
	return sortedByKey(append(list, c))
}

func sortedByKey(list []*tls.Certificate) []*tls.Certificate {
	slices.SortStableFunc(list, func(a, b *tls.Certificate) int { return keyRank(a) - keyRank(b) })
	return list
}

func keyRank(c *tls.Certificate) int {
	switch c.PrivateKey.(type) {
	case ed25519.PrivateKey, *ecdsa.PrivateKey:
		return 0
	}
	return 1
}

// normalize lower-cases name and drops a trailing dot, allocating only
// when it has to.
func normalize(name string) string {
	name = strings.TrimSuffix(name, ".")
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(name)
		}
	}
	return name
}
