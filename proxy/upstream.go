package proxy

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"
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

// transports holds one upstream per upstreamKey, created on first use and
// kept for the life of the Forwarder, so keep-alive connections to members
// survive reloads.
type transports struct {
	mu       sync.Mutex // guards byKey
	byKey    map[upstreamKey]*upstream
	maxIdle  int
	dialOpts net.Dialer
	dial     DialFunc
}

func (t *transports) get(k upstreamKey, tlsCfg *tls.Config) *upstream {
	t.mu.Lock()
	defer t.mu.Unlock()
	if u, ok := t.byKey[k]; ok {
		return u
	}
	dialer := t.dialOpts
	dialer.Timeout = k.connect
	u := &upstream{key: k, dialer: dialer, dialFn: t.dial, tls: tlsCfg, maxIdle: t.maxIdle}
	if k.proxyVersion != 0 {
		u.maxIdle = 0 // each connection carries one client's address
	}
	t.byKey[k] = u
	return u
}

// retainTLS closes and forgets the upstreams of TLS settings no snapshot
// uses any more, so changing a pool's certificates does not leak them.
func (t *transports) retainTLS(keep map[string]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, u := range t.byKey {
		if k.tlsKey != "" && !keep[k.tlsKey] {
			u.closeIdle()
			delete(t.byKey, k)
		}
	}
}

func (t *transports) closeIdle() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, u := range t.byKey {
		u.closeIdle()
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
	hold atomic.Bool  // while set, reads and writes leave the deadline alone
}

// release ends a hold and makes the next read or write re-arm the deadline.
func (c *idleTimeoutConn) release() {
	c.last.Store(0)
	c.hold.Store(false)
}

func (c *idleTimeoutConn) extend() {
	if c.hold.Load() {
		return
	}
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
