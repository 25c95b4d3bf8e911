package config

import (
	"crypto/tls"
	"fmt"
	"regexp"
	"strings"
)

// OctaviaListenerCiphers is Octavia's default_listener_ciphers
// (constants.CIPHERS_OWASP_SUITE_B), as haproxy gets it.
const OctaviaListenerCiphers = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:" +
	"DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:" +
	"DHE-RSA-AES256-SHA256:DHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES128-SHA256"

// DefaultListenerCiphers is terminator's default: Octavia's list with two
// deliberate differences. (1) Each ECDHE-RSA AEAD suite has its ECDHE-ECDSA
// twin, and ChaCha20-Poly1305 is offered: Octavia's list has no ECDSA suite
// at all, so an ECDSA certificate could serve no TLS 1.2 client. (2) The
// CBC suites are left out: Go does not implement ECDHE-RSA-AES256-SHA384
// or the DHE ones, and lists ECDHE-RSA-AES128-SHA256 as insecure (Lucky13
// timing). The DHE suites stay, as in Octavia, and are skipped since Go
// has no finite-field DHE. An explicit tls_ciphers is used as given.
const DefaultListenerCiphers = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:" +
	"DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256:" +
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" +
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

// tlsVersions maps Octavia's version names to crypto/tls constants; 0 marks
// a version Octavia knows and terminator refuses.
var tlsVersions = map[string]uint16{
	"SSLv3":   0,
	"TLSv1":   tls.VersionTLS10,
	"TLSv1.1": tls.VersionTLS11,
	"TLSv1.2": tls.VersionTLS12,
	"TLSv1.3": tls.VersionTLS13,
}

// opensslCiphers maps the OpenSSL names of the TLS 1.2 (and older) suites Go
// implements to their IDs.
var opensslCiphers = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA256":     tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
	"ECDHE-RSA-AES128-SHA256":       tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES128-SHA256":                 tls.TLS_RSA_WITH_AES_128_CBC_SHA256,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-DES-CBC3-SHA":        tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA,
	"DES-CBC3-SHA":                  tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
}

// tls13Ciphers are always enabled by Go when TLS 1.3 is; naming them is
// accepted and has no further effect.
var tls13Ciphers = map[string]bool{
	"TLS_AES_128_GCM_SHA256":       true,
	"TLS_AES_256_GCM_SHA384":       true,
	"TLS_CHACHA20_POLY1305_SHA256": true,
}

// unsupportedCipherPrefixes are OpenSSL families that are valid names but
// that Go does not implement (finite-field DHE, PSK, SRP, Camellia, ARIA, …).
var unsupportedCipherPrefixes = []string{"DHE-", "EDH-", "ADH-", "AECDH-", "PSK-", "DHE-PSK-", "ECDHE-PSK-", "RSA-PSK-", "SRP-", "CAMELLIA", "ARIA", "ECDHE-ECDSA-AES256-SHA384", "ECDHE-RSA-AES256-SHA384", "AES256-SHA256", "TLS_AES_128_CCM"}

var cipherCharset = regexp.MustCompile(`^[A-Za-z0-9\-+!:@=_.]+$`)

// ParseTLSVersions returns the minimum and maximum crypto/tls version for a
// list of Octavia version names. The list must be contiguous because Go
// enables a range of versions.
func ParseTLSVersions(names []string) (minV, maxV uint16, err error) {
	if len(names) == 0 {
		return 0, 0, fmt.Errorf("no TLS version enabled")
	}
	set := map[uint16]bool{}
	for _, n := range names {
		v, ok := tlsVersions[n]
		switch {
		case !ok:
			return 0, 0, fmt.Errorf("unknown TLS version %q (want TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3)", n)
		case v == 0:
			return 0, 0, fmt.Errorf("%s is not supported", n)
		}
		set[v] = true
		if minV == 0 || v < minV {
			minV = v
		}
		if v > maxV {
			maxV = v
		}
	}
	for v := minV; v <= maxV; v++ {
		if !set[v] {
			return 0, 0, fmt.Errorf("TLS versions must form a contiguous range; %v leaves a gap", names)
		}
	}
	return minV, maxV, nil
}

// ParseCiphers turns an OpenSSL-style colon-separated cipher list into the
// crypto/tls IDs for TLS 1.2 and older. Names Go does not implement are
// returned in skipped; unknown names are an error.
func ParseCiphers(list string) (ids []uint16, skipped []string, err error) {
	if !cipherCharset.MatchString(list) {
		return nil, nil, fmt.Errorf("cipher list %q has characters outside [A-Za-z0-9-+!:@=_.]", list)
	}
	for _, name := range strings.Split(list, ":") {
		if name == "" {
			continue
		}
		if id, ok := opensslCiphers[name]; ok {
			ids = append(ids, id)
			continue
		}
		if tls13Ciphers[name] {
			continue
		}
		if isUnsupportedCipher(name) {
			skipped = append(skipped, name)
			continue
		}
		return nil, nil, fmt.Errorf("unknown cipher %q", name)
	}
	return ids, skipped, nil
}

func isUnsupportedCipher(name string) bool {
	for _, p := range unsupportedCipherPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
