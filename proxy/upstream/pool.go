package upstream

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

// IdleTimeout closes member connections left idle this long, as
// net/http's Transport does by default.
const IdleTimeout = 90 * time.Second

// Pool dials member connections with one set of timeouts, PROXY and TLS
// settings, and keeps the idle ones per member address for reuse. It
// replaces net/http's Transport: a request is written and its response read
// by the goroutine serving it, with no per-connection goroutines and no
// hand-offs between them. It is safe for concurrent use.
type Pool struct {
	key     Key
	dialer  net.Dialer
	dialFn  DialFunc
	tls     *tls.Config // nil: plain HTTP to members
	maxIdle int         // idle connections kept per member; 0: none

	mu     sync.Mutex // guards idle and reaper
	idle   map[string][]*Conn
	reaper *time.Timer // armed while any connection is idle
}

func newPool(k Key, cfg *tls.Config, dial DialFunc, maxIdle int) *Pool {
	u := &Pool{key: k, dialer: net.Dialer{Timeout: k.Connect, KeepAlive: 30 * time.Second}, dialFn: dial, tls: cfg, maxIdle: maxIdle}
	if k.ProxyVersion != 0 {
		u.maxIdle = 0 // each connection carries one client's address
	}
	return u
}

// Conn is one connection to a member, used by one request at a time. R
// lives as long as the connection (it may hold bytes of the next
// response); writers are borrowed per request.
type Conn struct {
	Net      net.Conn      // what requests are written to (TLS, timeouts)
	R        *bufio.Reader // what responses are read from
	probe    *sockio.Probe // liveness probes of the TCP connection underneath; nil when it has no socket
	tls      *tls.Conn     // Net when the member speaks TLS, else nil
	timeouts *timeoutConn  // the member timeout layer, if any
	addr     string
	reused   bool
	idleFrom time.Time
}

// Close closes the connection.
func (mc *Conn) Close() { _ = mc.Net.Close() }

// Reused reports whether the connection carried a request before this one.
func (mc *Conn) Reused() bool { return mc.reused }

// Client is what a new member connection carries of the client it is
// dialed for: its addresses for a PROXY header, its SNI for the member's
// TLS handshake ("" for none).
type Client struct {
	Remote, Local net.Addr
	ServerName    string
}

// Get returns an idle connection to addr, or dials one. Every reused
// connection is probed first: one that the member closed, or on which the
// member sent anything while it was idle, is closed and never reused, since
// bytes nobody asked for would be read as the next client's response.
func (u *Pool) Get(ctx context.Context, cl Client, addr string) (*Conn, error) {
	for {
		mc := u.takeIdle(addr)
		if mc == nil {
			break
		}
		if mc.probe == nil || mc.probe.Alive() {
			return mc, nil
		}
		mc.Close()
	}
	return u.Dial(ctx, cl, addr)
}

// AtBoundary reports whether the last response ended exactly at a message
// boundary: nothing is left in the read buffer or, for TLS, decrypted and
// unread inside crypto/tls. Only then may the connection carry another
// request; a member that sent more than it framed has its connection
// closed, as haproxy does. Bytes still on the socket are caught by the
// probe in Get.
func (mc *Conn) AtBoundary() bool {
	if mc.R.Buffered() != 0 {
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

func (u *Pool) takeIdle(addr string) *Conn {
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

// Put keeps a connection whose last response was read completely for the
// next request, or closes it when the member's list is full.
func (u *Pool) Put(mc *Conn) {
	if u.maxIdle <= 0 {
		mc.Close()
		return
	}
	mc.idleFrom = time.Now()
	u.mu.Lock()
	if u.idle == nil {
		u.idle = map[string][]*Conn{}
	}
	list := u.idle[mc.addr]
	if len(list) >= u.maxIdle {
		u.mu.Unlock()
		mc.Close()
		return
	}
	u.idle[mc.addr] = append(list, mc)
	if u.reaper == nil {
		u.reaper = time.AfterFunc(IdleTimeout, u.reap)
	}
	u.mu.Unlock()
}

// reap closes connections idle longer than IdleTimeout and re-arms itself
// while any connection stays idle.
func (u *Pool) reap() {
	cutoff := time.Now().Add(-IdleTimeout)
	var expired []*Conn
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
		u.reaper = time.AfterFunc(IdleTimeout/4, u.reap)
	}
	u.mu.Unlock()
	for _, mc := range expired {
		mc.Close()
	}
}

// CloseIdle closes every idle connection (at shutdown, or when the TLS
// settings they were made with are gone).
func (u *Pool) CloseIdle() {
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
			mc.Close()
		}
	}
}

// handshake runs TLS over c within connect (0: no bound beyond ctx). A
// failure closes c and is a dial error, as a refused connection is.
func handshake(ctx context.Context, c net.Conn, cfg *tls.Config, connect time.Duration) (*tls.Conn, error) {
	if connect > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, connect)
		defer cancel()
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: c.RemoteAddr(), Err: fmt.Errorf("TLS to member: %w", err)}
	}
	return tc, nil
}

// Dial connects to a member: TCP within the connect timeout, then the PROXY
// header and the TLS handshake when the pool asks for them.
func (u *Pool) Dial(ctx context.Context, cl Client, addr string) (*Conn, error) {
	raw, err := u.dialFn(ctx, &u.dialer, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := raw
	if u.key.ProxyVersion != 0 {
		h := proxyproto.HeaderProxyFromAddrs(u.key.ProxyVersion, cl.Remote, cl.Local)
		if _, err := h.WriteTo(c); err != nil {
			c.Close()
			return nil, fmt.Errorf("sending the PROXY header to %s: %w", addr, err)
		}
	}
	var timeouts *timeoutConn
	if u.key.Idle > 0 {
		timeouts = &timeoutConn{Conn: c, idle: u.key.Idle}
		timeouts.extend()
		c = timeouts
	}
	if u.tls != nil {
		cfg := u.tls.Clone()           // per member connection, not per request
		cfg.ServerName = cl.ServerName // the client's SNI
		tc, err := handshake(ctx, c, cfg, u.key.Connect)
		if err != nil {
			return nil, err
		}
		c = tc
	}
	mc := &Conn{Net: c, R: bufio.NewReaderSize(c, 4<<10), addr: addr}
	if sc, ok := raw.(syscall.Conn); ok {
		mc.probe = sockio.NewProbe(sc)
	}
	mc.tls, _ = c.(*tls.Conn)
	if u.key.Idle > 0 {
		mc.timeouts = timeouts
	}
	return mc, nil
}
