package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	acmeapi "golang.org/x/crypto/acme"
	"golang.org/x/time/rate"
)

// ALPNProto is the protocol a TLS-ALPN-01 validation offers (RFC 8737).
const ALPNProto = acmeapi.ALPNProto

// challenges holds the answers to this instance's pending challenges and
// finds other instances' answers in the store.
type challenges struct {
	store Store
	log   *slog.Logger
	// remote bounds store look-ups for answers this instance does not
	// hold: anyone can ask for /.well-known/acme-challenge/anything.
	remote *rate.Limiter

	mu   sync.Mutex
	http map[string]string           // token → key authorization
	alpn map[string]*tls.Certificate // name → acme-tls/1 certificate
}

func (c *challenges) init(s Store, log *slog.Logger) {
	c.store, c.log = s, log
	c.remote = rate.NewLimiter(20, 20)
	c.http = map[string]string{}
	c.alpn = map[string]*tls.Certificate{}
}

// tokenPattern is RFC 8555's token alphabet (base64url), bounded.
var tokenPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{16,64}$`)

// present publishes the answer to chal for name, here and in the store, and
// returns a function that withdraws it.
func (c *challenges) present(ctx context.Context, cl *acmeapi.Client, name string, chal *acmeapi.Challenge) (func(), error) {
	if !tokenPattern.MatchString(chal.Token) {
		return nil, errors.New("the CA's challenge token is malformed")
	}
	var key string
	switch chal.Type {
	case HTTP01:
		ka, err := cl.HTTP01ChallengeResponse(chal.Token)
		if err != nil {
			return nil, err
		}
		key = httpKey(chal.Token)
		c.mu.Lock()
		c.http[chal.Token] = ka
		c.mu.Unlock()
		if err := c.store.Store(ctx, key, []byte(ka)); err != nil {
			c.log.Warn("ACME challenge answer not shared; only this instance can answer it", "name", name, "err", err)
		}
	case TLSALPN01:
		cert, err := cl.TLSALPN01ChallengeCert(chal.Token, name)
		if err != nil {
			return nil, err
		}
		key = "challenges/tls-alpn-01/" + name
		c.mu.Lock()
		c.alpn[name] = &cert
		c.mu.Unlock()
		if data, err := certPEM(&cert); err == nil {
			if err := c.store.Store(ctx, key, data); err != nil {
				c.log.Warn("ACME challenge answer not shared; only this instance can answer it", "name", name, "err", err)
			}
		}
	default:
		return nil, errors.New("unsupported challenge type")
	}
	return func() {
		c.mu.Lock()
		delete(c.http, chal.Token)
		if chal.Type == TLSALPN01 {
			delete(c.alpn, name)
		}
		c.mu.Unlock()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = c.store.Delete(dctx, key)
	}, nil
}

// HTTP01 returns the key authorization to answer
// GET /.well-known/acme-challenge/TOKEN with, if an HTTP-01 challenge with
// that token is pending here or, shared through the store, elsewhere.
func (m *Manager) HTTP01(token string) (string, bool) {
	c := &m.chal
	c.mu.Lock()
	ka, ok := c.http[token]
	c.mu.Unlock()
	if ok || !tokenPattern.MatchString(token) || !c.remote.Allow() {
		return ka, ok
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	data, err := c.store.Load(ctx, httpKey(token))
	if err != nil || len(data) > 512 || !strings.HasPrefix(string(data), token+".") {
		return "", false
	}
	return string(data), true
}

// TLSALPN01 returns the acme-tls/1 certificate for serverName if a
// TLS-ALPN-01 challenge for it is pending here or elsewhere.
func (m *Manager) TLSALPN01(serverName string) (*tls.Certificate, bool) {
	c := &m.chal
	name := strings.ToLower(serverName)
	c.mu.Lock()
	cert, ok := c.alpn[name]
	c.mu.Unlock()
	if ok || validKey("challenges/tls-alpn-01/"+name) != nil || !c.remote.Allow() {
		return cert, ok
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	data, err := c.store.Load(ctx, "challenges/tls-alpn-01/"+name)
	if err != nil {
		return nil, false
	}
	pair, err := tls.X509KeyPair(data, data)
	if err != nil {
		return nil, false
	}
	return &pair, true
}

// httpKey is where the answer for token is shared: the token hex-encoded,
// as the store's key alphabet has no upper case.
func httpKey(token string) string { return "challenges/http-01/" + hex.EncodeToString([]byte(token)) }

// certPEM encodes a self-made certificate and its key.
func certPEM(c *tls.Certificate) ([]byte, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return nil, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	for _, der := range c.Certificate {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return out, nil
}
