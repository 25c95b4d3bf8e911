package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/terminator-proxy/terminator/proxy/sockio"
)

// memberIdleTimeout closes member connections left idle this long, as
// net/http's Transport does by default.
const memberIdleTimeout = 90 * time.Second

// upstream dials member connections with one set of timeouts, PROXY and TLS
// settings, and keeps the idle ones per member address for reuse. It
// replaces net/http's Transport: a request is written and its response read
// by the goroutine serving it, with no per-connection goroutines and no
// hand-offs between them.
type upstream struct {
	key     upstreamKey
	dialer  net.Dialer
	dialFn  DialFunc
	tls     *tls.Config // nil: plain HTTP to members
	maxIdle int         // idle connections kept per member; 0: none

	mu     sync.Mutex // guards idle and reaper
	idle   map[string][]*memberConn
	reaper *time.Timer // armed while any connection is idle
}

// memberConn is one connection to a member. Its reader lives as long as
// the connection (it may hold bytes of the next response); writers are
// borrowed per request.
type memberConn struct {
	c        net.Conn         // what requests are written to (TLS, timeouts)
	probe    *sockio.Probe    // liveness probes of the TCP connection underneath; nil when it has no socket
	tls      *tls.Conn        // c when the member speaks TLS, else nil
	timeouts *idleTimeoutConn // the member timeout layer, if any
	br       *bufio.Reader
	addr     string
	reused   bool
	idleFrom time.Time
}

func (mc *memberConn) close() { _ = mc.c.Close() }

// get returns an idle connection to addr, or dials one. Every reused
// connection is probed first: one that the member closed, or on which the
// member sent anything while it was idle, is closed and never reused, since
// bytes nobody asked for would be read as the next client's response.
func (u *upstream) get(ctx context.Context, x *exchange, addr string) (*memberConn, error) {
	for {
		mc := u.takeIdle(addr)
		if mc == nil {
			break
		}
		if mc.probe == nil || mc.probe.Alive() {
			return mc, nil
		}
		mc.close()
	}
	return u.dial(ctx, x, addr)
}

// atBoundary reports whether the last response ended exactly at a message
// boundary: nothing is left in the read buffer or, for TLS, decrypted and
// unread inside crypto/tls. Only then may the connection carry another
// request; a member that sent more than it framed has its connection
// closed, as haproxy does. Bytes still on the socket are caught by the
// probe in get.
func (mc *memberConn) atBoundary() bool {
	if mc.br.Buffered() != 0 {
		return false
	}
	if mc.tls == nil {
		return true
	}
	// crypto/tls keeps the rest of a record that did not fit the caller's
	// buffer. A read with an expired deadline returns those bytes at once
	// if there are any, and otherwise fails with a timeout, which leaves
	// the connection usable.
	if mc.timeouts != nil {
		mc.timeouts.hold.Store(true) // keep the expired deadline in place
		defer mc.timeouts.release()
	}
	_ = mc.tls.SetReadDeadline(time.Now().Add(-time.Second))
	var b [1]byte
	n, err := mc.tls.Read(b[:])
	_ = mc.tls.SetReadDeadline(time.Time{})
	return n == 0 && errors.Is(err, os.ErrDeadlineExceeded)
}

func (u *upstream) takeIdle(addr string) *memberConn {
	u.mu.Lock()
	defer u.mu.Unlock()
	list := u.idle[addr]
	if len(list) == 0 {
		return nil
	}
	mc := list[len(list)-1] // most recently used: the least likely to be stale
	list[len(list)-1] = nil
	u.idle[addr] = list[:len(list)-1]
	mc.reused = true
	return mc
}

// put keeps a connection whose last response was read completely for the
// next request, or closes it when the member's list is full.
func (u *upstream) put(mc *memberConn) {
	if u.maxIdle <= 0 {
		mc.close()
		return
	}
	mc.idleFrom = time.Now()
	u.mu.Lock()
	if u.idle == nil {
		u.idle = map[string][]*memberConn{}
	}
	list := u.idle[mc.addr]
	if len(list) >= u.maxIdle {
		u.mu.Unlock()
		mc.close()
		return
	}
	u.idle[mc.addr] = append(list, mc)
	if u.reaper == nil {
		u.reaper = time.AfterFunc(memberIdleTimeout, u.reap)
	}
	u.mu.Unlock()
}

// reap closes connections idle longer than memberIdleTimeout and re-arms itself
// while any connection stays idle.
func (u *upstream) reap() {
	cutoff := time.Now().Add(-memberIdleTimeout)
	var expired []*memberConn
	u.mu.Lock()
	for addr, list := range u.idle {
		n := 0 // the list is ordered oldest first
		for n < len(list) && list[n].idleFrom.Before(cutoff) {
			n++
		}
		expired = append(expired, list[:n]...)
		if rest := list[n:]; len(rest) > 0 {
			u.idle[addr] = append(list[:0], rest...)
		} else {
			delete(u.idle, addr)
		}
	}
	u.reaper = nil
	if len(u.idle) > 0 {
		u.reaper = time.AfterFunc(memberIdleTimeout/4, u.reap)
	}
	u.mu.Unlock()
	for _, mc := range expired {
		mc.close()
	}
}

// closeIdle closes every idle connection (at shutdown, or when the TLS
// settings they were made with are gone).
func (u *upstream) closeIdle() {
	u.mu.Lock()
	idle := u.idle
	u.idle = nil
	if u.reaper != nil {
		u.reaper.Stop()
		u.reaper = nil
	}
	u.mu.Unlock()
	for _, list := range idle {
		for _, mc := range list {
			mc.close()
		}
	}
}

// dial connects to a member: TCP within the connect timeout, then the PROXY
// header and the TLS handshake when the pool asks for them.
func (u *upstream) dial(ctx context.Context, x *exchange, addr string) (*memberConn, error) {
	raw, err := u.dialFn(ctx, &u.dialer, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := raw
	if u.key.proxyVersion != 0 {
		h := proxyproto.HeaderProxyFromAddrs(u.key.proxyVersion, x.ci.remote, x.ci.local)
		if _, err := h.WriteTo(c); err != nil {
			c.Close()
			return nil, fmt.Errorf("sending the PROXY header to %s: %w", addr, err)
		}
	}
	var timeouts *idleTimeoutConn
	if u.key.idle > 0 {
		timeouts = &idleTimeoutConn{Conn: c, idle: u.key.idle}
		timeouts.extend()
		c = timeouts
	}
	if u.tls != nil {
		cfg := u.tls.Clone() // per member connection, not per request
		if x.ci.tls != nil {
			cfg.ServerName = x.ci.tls.ServerName // the client's SNI
		}
		if u.key.connect > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, u.key.connect)
			defer cancel()
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: raw.RemoteAddr(), Err: fmt.Errorf("TLS to member: %w", err)}
		}
		c = tc
	}
	mc := &memberConn{c: c, br: bufio.NewReaderSize(c, 4<<10), addr: addr}
	if sc, ok := raw.(syscall.Conn); ok {
		mc.probe = sockio.NewProbe(sc)
	}
	mc.tls, _ = c.(*tls.Conn)
	if u.key.idle > 0 {
		mc.timeouts = timeouts
	}
	return mc, nil
}
