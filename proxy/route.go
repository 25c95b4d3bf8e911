package proxy

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/terminator-proxy/terminator/accesslog"
	"github.com/terminator-proxy/terminator/proxy/l7"
	"github.com/terminator-proxy/terminator/proxy/lb"
	"github.com/terminator-proxy/terminator/proxy/upstream"
)

// Route is everything a listener serves with, swapped whole on reload.
// It must not be modified once passed to Listener.Update.
type Route struct {
	// Listener names the listener in logs and metrics.
	Listener string
	// TLS is the config handed out for every handshake, nil for plain HTTP.
	// The listener adds its session-ticket hooks to it before first use.
	TLS *tls.Config
	// TicketLifetime bounds how long a session ticket resumes a session
	// (haproxy's tune.ssl.lifetime); 0 leaves crypto/tls's 7 days.
	TicketLifetime time.Duration
	// Pool receives the requests no L7 policy claims; nil answers 503.
	Pool *lb.Pool
	// Redirect, if set, answers every request with a redirect to this
	// prefix and the request's path and query; a prefix without a host
	// ("https://", "https://:8443") keeps the request's host.
	Redirect     string
	RedirectCode int
	// Router holds the listener's compiled L7 policies (nil: none).
	Router  *l7.Router[*lb.Pool]
	Headers HeaderRules
	// ClientTimeout is haproxy's timeout client (Octavia
	// timeout_client_data): the longest a client may stay silent, while
	// handshaking, sending headers or a body, reading a response, or idle
	// between requests. 0 means no limit (handshakes still get one).
	ClientTimeout time.Duration
	// ConnectTimeout bounds connecting to a member (timeout_member_connect).
	ConnectTimeout time.Duration
	// MemberTimeout is haproxy's timeout server (timeout_member_data): the
	// longest a member connection may stay silent while a request, or an
	// upgraded tunnel, is in progress.
	MemberTimeout time.Duration
	// ConnectionLimit caps concurrent client connections; 0 is no limit.
	ConnectionLimit int
	// Allowed, if not empty, lists the source prefixes accepted; other
	// connections are closed at accept.
	Allowed []netip.Prefix
	// ProxyFrom lists the sources that must send a PROXY protocol header.
	ProxyFrom []netip.Prefix
	// AccessLog writes one log line per request: to Access when set, else
	// to the listener's logger.
	AccessLog bool
	Access    *accesslog.Logger
	// RequestID gives each request an X-Request-Id (kept if sent).
	RequestID bool
	// Layer4 relays each connection's bytes to a member of Pool without
	// parsing them (TCP and HTTPS pass-through listeners).
	Layer4 bool
	// Exporter, if set, answers every request (PROMETHEUS listeners: the
	// metrics on GET /metrics).
	Exporter http.Handler
}

// routeState is a Route with its metric handles and member transport
// resolved.
type routeState struct {
	*Route
	counters  *counters
	transport *upstream.Pool
	// poolTransports holds the member upstreams of pools that need their
	// own (PROXY headers, TLS to members), resolved once per route.
	poolTransports map[*lb.Pool]*upstream.Pool
	// poolH2 holds the HTTP/2 member connections of pools that speak it.
	poolH2 map[*lb.Pool]*upstream.H2Pool
}

// errNotAllowed marks connections refused by Allowed.
var errNotAllowed = errors.New("proxy: source address not in allowed_cidrs")

// allows reports whether a connection from addr may be served.
func (r *Route) allows(addr net.Addr) bool {
	return len(r.Allowed) == 0 || inPrefixes(r.Allowed, addr)
}

func inPrefixes(ps []netip.Prefix, addr net.Addr) bool {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
