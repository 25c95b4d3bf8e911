package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
)

// connInfo holds what every request on one client connection shares. It is
// created once per connection by the server's ConnContext hook.
type connInfo struct {
	remote   net.Addr // the client (from a PROXY header when there was one)
	local    net.Addr
	clientIP string
	port     string               // local port, haproxy's dst_port, for X-Forwarded-Port
	proto    string               // "https" or "http", for X-Forwarded-Proto
	tls      *tls.ConnectionState // nil on plain HTTP

	sslOnce sync.Once // guards ssl; HTTP/2 serves requests concurrently
	ssl     map[string]string

	dnOnce sync.Once           // guards dn
	dn     map[string][]string // subject DN fields by OpenSSL short name, upper-cased
}

// TLSState implements l7.Conn.
func (ci *connInfo) TLSState() *tls.ConnectionState { return ci.tls }

// DNField implements l7.Conn: the client certificate's subject values for
// field (CN, O, OU, …), computed on first use; none without a certificate.
func (ci *connInfo) DNField(field string) []string {
	ci.dnOnce.Do(func() {
		ci.dn = map[string][]string{}
		if ci.tls == nil || len(ci.tls.PeerCertificates) == 0 {
			return
		}
		subject := ci.tls.PeerCertificates[0].Subject
		names := subject.Names // as parsed, in certificate order
		if len(names) == 0 {
			for _, rdn := range subject.ToRDNSequence() {
				names = append(names, rdn...)
			}
		}
		for _, atv := range names {
			key, ok := dnShortNames[atv.Type.String()]
			if !ok {
				key = atv.Type.String()
			}
			ci.dn[strings.ToUpper(key)] = append(ci.dn[strings.ToUpper(key)], fmt.Sprint(atv.Value))
		}
	})
	return ci.dn[field]
}

type connInfoKey struct{}

func newConnInfo(c net.Conn) *connInfo {
	ci := &connInfo{proto: "http", remote: c.RemoteAddr(), local: c.LocalAddr()}
	if host, _, err := net.SplitHostPort(c.RemoteAddr().String()); err == nil {
		ci.clientIP = host
	} else {
		ci.clientIP = c.RemoteAddr().String()
	}
	if _, port, err := net.SplitHostPort(c.LocalAddr().String()); err == nil {
		ci.port = port
	}
	if tc, ok := c.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		ci.tls, ci.proto = &cs, "https"
	}
	return ci
}

// sslValues returns the X-SSL-* values, computed on first use.
func (ci *connInfo) sslValues() map[string]string {
	ci.sslOnce.Do(func() { ci.ssl = sslHeaderValues(ci.tls) })
	return ci.ssl
}

func connInfoFrom(ctx context.Context) *connInfo {
	ci, _ := ctx.Value(connInfoKey{}).(*connInfo)
	return ci
}
