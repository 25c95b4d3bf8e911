package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"
)

// upstreamKey identifies a transport: member connections are shared by
// every route with the same connect and inactivity timeouts.
type upstreamKey struct {
	connect, idle time.Duration
	// proxyVersion (1 or 2) sends a PROXY protocol header on each member
	// connection; such connections carry one client's address, so they are
	// never reused for another request.
	proxyVersion byte
	// tlsKey identifies the TLS settings of a re-encrypting pool ("": none).
	tlsKey string
}

// transports holds one http.Transport per upstreamKey, created on first
// use and kept for the life of the Forwarder, so keep-alive connections to
// members survive reloads.
type transports struct {
	mu       sync.Mutex // guards byKey
	byKey    map[upstreamKey]*http.Transport
	maxIdle  int
	dialOpts net.Dialer
}

func (t *transports) get(k upstreamKey, tlsCfg *tls.Config) *http.Transport {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr, ok := t.byKey[k]; ok {
		return tr
	}
	dialer := t.dialOpts
	dialer.Timeout = k.connect
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if k.proxyVersion != 0 {
			x := exchangeFrom(ctx)
			h := proxyproto.HeaderProxyFromAddrs(k.proxyVersion, x.ci.remote, x.ci.local)
			if _, err := h.WriteTo(c); err != nil {
				c.Close()
				return nil, fmt.Errorf("sending the PROXY header: %w", err)
			}
		}
		if k.idle <= 0 {
			return c, nil
		}
		tc := &idleTimeoutConn{Conn: c, idle: k.idle}
		tc.extend()
		return tc, nil
	}
	tr := &http.Transport{
		Proxy:                  nil, // never route member traffic through $HTTP_PROXY
		DialContext:            dial,
		DisableKeepAlives:      k.proxyVersion != 0,
		MaxIdleConnsPerHost:    t.maxIdle,
		IdleConnTimeout:        90 * time.Second,
		DisableCompression:     true, // pass Accept-Encoding through untouched
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	if tlsCfg != nil {
		// Our own TLS dial: SNI is the client's, per connection.
		tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			cfg := tlsCfg.Clone() // per member connection, not per request
			if x := exchangeFrom(ctx); x != nil && x.ci.tls != nil {
				cfg.ServerName = x.ci.tls.ServerName
			}
			tc := tls.Client(c, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("TLS to member: %w", err)}
			}
			return tc, nil
		}
	}
	t.byKey[k] = tr
	return tr
}

// retainTLS closes and forgets the transports of TLS settings no snapshot
// uses any more, so changing a pool's certificates does not leak them.
func (t *transports) retainTLS(keep map[string]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, tr := range t.byKey {
		if k.tlsKey != "" && !keep[k.tlsKey] {
			tr.CloseIdleConnections()
			delete(t.byKey, k)
		}
	}
}

func (t *transports) closeIdle() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tr := range t.byKey {
		tr.CloseIdleConnections()
	}
}

// idleTimeoutConn is haproxy's "timeout server" on a member connection:
// any read or write pushes the read deadline idle into the future, so a
// member silent for that long while a request (or an upgraded tunnel) is in
// progress fails with a timeout. The deadline is re-armed at most every
// idle/8, so the effective limit lies between 7/8 idle and idle, and the
// common path costs no timer operation.
type idleTimeoutConn struct {
	net.Conn
	idle time.Duration
	last atomic.Int64 // unix nanos of the last re-arm
}

func (c *idleTimeoutConn) extend() {
	now := time.Now()
	if last := c.last.Load(); now.UnixNano()-last < int64(c.idle/8) {
		return
	}
	c.last.Store(now.UnixNano())
	_ = c.Conn.SetReadDeadline(now.Add(c.idle))
}

func (c *idleTimeoutConn) Read(p []byte) (int, error) {
	c.extend()
	return c.Conn.Read(p)
}

func (c *idleTimeoutConn) Write(p []byte) (int, error) {
	c.extend()
	return c.Conn.Write(p)
}

// roundTripper sends each request over the transport of its route. A
// request whose member refuses the connection before any of its body was
// sent is retried on other members, up to maxRetries times, as haproxy's
// "retries 3" with "option redispatch".
type roundTripper struct{}

const maxRetries = 3

func (roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	x := exchangeFrom(r.Context())
	tr := x.route.transport
	if t, ok := x.route.poolTransports[x.pool]; ok {
		tr = t
	}
	resp, err := tr.RoundTrip(r)
	var tried []*Member // allocated only when a retry happens
	for n := 0; err != nil && n < maxRetries && isDialError(err) && bodyUnsent(r, x) && r.Context().Err() == nil; n++ {
		if tried == nil {
			tried = []*Member{x.member}
		}
		next := x.pool.nextExcluding(x.ci.clientIP, tried)
		if next == nil {
			break
		}
		x.member.errors("connect").Inc()
		x.member.state.connectFailed()
		x.pool.retries.Inc()
		next.state.active.Add(1)
		x.member.state.active.Add(-1)
		x.member = next
		tried = append(tried, next)
		r.URL.Host = next.Addr
		resp, err = tr.RoundTrip(r)
	}
	return resp, err
}

// bodyUnsent reports whether r can be sent again: it has no body, or none
// of its body was read; then it rearms the body for the next attempt.
func bodyUnsent(r *http.Request, x *exchange) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	if x.body == nil || x.body.n != 0 {
		return false
	}
	r.Body = outboundBody{x.body}
	return true
}

// deadline re-arms a connection deadline at most every timeout/8.
type deadline struct {
	timeout time.Duration
	last    time.Time
}

// due reports whether the deadline should be re-armed now, and records it.
func (d *deadline) due(now time.Time) bool {
	if d.timeout <= 0 || now.Sub(d.last) < d.timeout/8 {
		return false
	}
	d.last = now
	return true
}
