package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/terminator-proxy/terminator/proxy/h2client"
)

// H2Pool is the HTTP/2 connections of one H2Key, per member address: a
// pool that offers h2 to TLS members (alpn_protocols) or speaks h2c with
// prior knowledge keeps one multiplexed connection per member (more when
// the member's SETTINGS_MAX_CONCURRENT_STREAMS is reached). A TLS member
// that selects http/1.1 instead is spoken to over the pool's HTTP/1.1
// connections (H1) for IdleTimeout before h2 is offered again. It is safe
// for concurrent use.
type H2Pool struct {
	key     H2Key
	tls     *tls.Config // nil: h2c
	dialer  net.Dialer
	dialFn  DialFunc
	h1      *Pool // members that select http/1.1; nil for h2c
	maxHead uint32

	mu      sync.Mutex
	conns   map[string][]*h2client.Conn
	dialing map[string]*h2dial   // one dial per member at a time
	h1only  map[string]time.Time // members that selected http/1.1, until
}

// h2dial is a dial in progress; err is set before done closes.
type h2dial struct {
	done chan struct{}
	err  error
}

func newH2Pool(k H2Key, cfg *tls.Config, dial DialFunc, maxIdle int, maxHead uint32) *H2Pool {
	p := &H2Pool{
		key: k, tls: cfg, dialFn: dial, maxHead: maxHead,
		dialer: net.Dialer{Timeout: k.Connect, KeepAlive: 30 * time.Second},
		conns:  map[string][]*h2client.Conn{}, dialing: map[string]*h2dial{}, h1only: map[string]time.Time{},
	}
	if cfg != nil {
		h1 := cfg.Clone()
		h1.NextProtos = []string{"http/1.1"}
		p.h1 = newPool(Key{Connect: k.Connect, Idle: k.Idle, TLSKey: k.TLSKey}, h1, dial, maxIdle)
	}
	return p
}

// H1 is the pool for members that declined h2; nil for h2c.
func (p *H2Pool) H1() *Pool { return p.h1 }

// Get returns a connection to addr with a stream reserved, dialing when
// none has room (concurrent requests share one dial). h1 reports a member
// to be spoken to in HTTP/1.1 instead.
func (p *H2Pool) Get(ctx context.Context, addr string) (c *h2client.Conn, h1 bool, err error) {
	for {
		p.mu.Lock()
		if until, ok := p.h1only[addr]; ok {
			if time.Now().Before(until) {
				p.mu.Unlock()
				return nil, true, nil
			}
			delete(p.h1only, addr)
		}
		list := slices.DeleteFunc(p.conns[addr], (*h2client.Conn).Unusable)
		p.conns[addr] = list
		for _, c := range list {
			if c.Reserve() {
				p.mu.Unlock()
				return c, false, nil
			}
		}
		if d := p.dialing[addr]; d != nil {
			p.mu.Unlock()
			select {
			case <-d.done:
				if d.err != nil && !errors.Is(d.err, context.Canceled) {
					return nil, false, d.err
				}
				continue // dialed, or the dialing request went away: try again
			case <-ctx.Done():
				return nil, false, ctx.Err()
			}
		}
		d := &h2dial{done: make(chan struct{})}
		p.dialing[addr] = d
		p.mu.Unlock()
		c, h1, err := p.dial(ctx, addr)
		p.mu.Lock()
		delete(p.dialing, addr)
		switch {
		case c != nil:
			p.conns[addr] = append(p.conns[addr], c)
		case h1:
			p.h1only[addr] = time.Now().Add(IdleTimeout)
		}
		p.mu.Unlock()
		d.err = err
		close(d.done)
		if err != nil || h1 {
			return nil, h1, err
		}
	}
}

// dial connects to a member and starts HTTP/2 on the connection: TCP and
// TLS within the connect timeout. Writes are gathered by a corkedConn
// above TLS, so concurrent streams share records and system calls.
func (p *H2Pool) dial(ctx context.Context, addr string) (*h2client.Conn, bool, error) {
	raw, err := p.dialFn(ctx, &p.dialer, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	nc := raw
	if p.tls != nil {
		tc, err := handshake(ctx, raw, p.tls, p.key.Connect)
		if err != nil {
			return nil, false, err
		}
		if tc.ConnectionState().NegotiatedProtocol != "h2" {
			tc.Close()
			return nil, true, nil
		}
		nc = tc
	}
	c, err := h2client.New(newCorkedConn(nc), h2client.Options{
		MaxHeaderListSize: p.maxHead,
		// Pings find a member connection that died silently, whatever
		// its streams are waiting for.
		PingAfter: 30 * time.Second, PingTimeout: 15 * time.Second,
		IdleTimeout: IdleTimeout,
	})
	if err != nil {
		return nil, false, &net.OpError{Op: "dial", Net: "tcp", Addr: raw.RemoteAddr(), Err: err}
	}
	return c, false, nil
}

// CloseIdle closes every connection once its streams are done (at
// shutdown, or when the TLS settings they were made with are gone).
func (p *H2Pool) CloseIdle() {
	p.mu.Lock()
	all := p.conns
	p.conns = map[string][]*h2client.Conn{}
	p.mu.Unlock()
	for _, list := range all {
		for _, c := range list {
			c.Shutdown()
		}
	}
	if p.h1 != nil {
		p.h1.CloseIdle()
	}
}
