package proxy

import (
	"crypto/tls"
	"net/http"
	"slices"
	"strings"
)

// ChallengeResponder answers ACME challenges (RFC 8555 §8.3, RFC 8737)
// for the certificate manager that started them. Both methods are called
// on the request path and must return quickly.
type ChallengeResponder interface {
	// HTTP01 returns the key authorization for token when an HTTP-01
	// challenge with that token is pending.
	HTTP01(token string) (string, bool)
	// TLSALPN01 returns the acme-tls/1 certificate for serverName when a
	// TLS-ALPN-01 challenge for it is pending.
	TLSALPN01(serverName string) (*tls.Certificate, bool)
}

const (
	acmeALPN       = "acme-tls/1"
	acmeHTTPPrefix = "/.well-known/acme-challenge/"
)

// acmeTLSConfig returns the config that answers a TLS-ALPN-01 validation
// for hello, or nil when hello is not one or no challenge is pending. A
// validation offers acme-tls/1 alone; the connection is closed once its
// handshake completes, so the listener's client authentication is never
// bypassed for a request.
func (l *Listener) acmeTLSConfig(hello *tls.ClientHelloInfo) *tls.Config {
	ch := l.opts.Challenges
	if ch == nil || !slices.Equal(hello.SupportedProtos, []string{acmeALPN}) {
		return nil
	}
	cert, ok := ch.TLSALPN01(hello.ServerName)
	if !ok {
		return nil
	}
	return &tls.Config{
		Certificates: []tls.Certificate{*cert},
		NextProtos:   []string{acmeALPN},
		MinVersion:   tls.VersionTLS12,
	}
}

// answerHTTP01 answers r if it asks for a pending HTTP-01 challenge's key
// authorization, and reports whether it did. Other requests for the
// well-known path go on to the members, which may run their own ACME
// clients.
func (l *Listener) answerHTTP01(w http.ResponseWriter, r *http.Request) bool {
	ch := l.opts.Challenges
	if ch == nil || r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, acmeHTTPPrefix) {
		return false
	}
	ka, ok := ch.HTTP01(strings.TrimPrefix(r.URL.Path, acmeHTTPPrefix))
	if !ok {
		return false
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(ka))
	return true
}
