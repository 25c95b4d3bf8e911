package udprelay

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// replyBuffer bounds a member's answer; a longer one is dropped and
// counted rather than forwarded cut.
const replyBuffer = 16 << 10

// dialTimeout bounds opening a member socket (a local operation for UDP).
const dialTimeout = 5 * time.Second

// flow is one client address's traffic to one member.
type flow struct {
	r      *Relay
	client netip.AddrPort
	member Member
	st     *memberState
	conn   net.Conn
	sticky netip.Addr // the persistence key, if the pool persists
	last   atomic.Int64
	once   sync.Once
}

func (f *flow) touch() { f.last.Store(time.Now().UnixNano()) }

// flowFor returns client's flow, opening one if it has none or its member
// can no longer take it; nil drops the datagram.
func (r *Relay) flowFor(client netip.AddrPort) *flow {
	c := r.spec.Load()
	r.mu.Lock()
	f := r.flows[client]
	r.mu.Unlock()
	if f != nil {
		if c.usable(f.member.Addr) {
			return f
		}
		f.close() // moved: its member left, went DOWN or refused
	}
	if c.Pool == "" || !c.allows(client.Addr()) {
		return nil
	}
	m, key := r.pick(c, client.Addr())
	if m == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	conn, err := r.opts.Dial(ctx, &net.Dialer{}, "udp", m.Addr)
	cancel()
	if err != nil {
		r.opts.Metrics.MemberErrors.WithLabelValues(c.Pool, m.Label, "connect").Inc()
		r.opts.Logger.Warn("udp listener: cannot open a member socket", "listener", c.Listener, "member", m.Addr, "err", err)
		return nil
	}
	f = &flow{r: r, client: client, member: *m, st: c.state[m.Addr], conn: conn, sticky: key}
	f.touch()
	r.mu.Lock()
	if r.closed || len(r.flows) >= r.opts.MaxFlows {
		r.mu.Unlock()
		conn.Close()
		return nil
	}
	r.flows[client] = f
	f.st.flows.Add(1)
	if key.IsValid() {
		s := r.sticky[key]
		s.addr, s.flows = m.Addr, s.flows+1
		r.sticky[key] = s
	}
	r.wg.Add(1)
	r.mu.Unlock()
	r.active.Inc()
	r.total.Inc()
	go f.run()
	return f
}

// run forwards the member's answers to the client until the flow has been
// idle for the timeout, the member refuses, or the flow is closed.
func (f *flow) run() {
	defer f.r.wg.Done()
	defer f.close()
	idle := f.r.opts.IdleTimeout
	buf := make([]byte, replyBuffer)
	uc, _ := f.conn.(*net.UDPConn)
	for {
		_ = f.conn.SetReadDeadline(time.Unix(0, f.last.Load()).Add(idle))
		var n, flags int
		var err error
		if uc != nil {
			n, _, flags, _, err = uc.ReadMsgUDPAddrPort(buf, nil)
		} else {
			n, err = f.conn.Read(buf)
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if time.Since(time.Unix(0, f.last.Load())) >= idle {
					return
				}
				continue // the client spoke meanwhile
			}
			f.fail(err)
			return
		}
		f.touch()
		if flags&syscall.MSG_TRUNC != 0 {
			f.r.dropped.Inc()
			continue
		}
		if _, err := f.r.writeTo(buf[:n], f.client); err == nil {
			f.r.out.Add(float64(n))
		}
	}
}

// fail ends the flow after err; a refusal holds the member out.
func (f *flow) fail(err error) {
	if errors.Is(err, syscall.ECONNREFUSED) {
		f.st.refused.Store(time.Now().Add(refusedHold).UnixNano())
		f.r.opts.Metrics.MemberErrors.WithLabelValues(f.r.spec.Load().Pool, f.member.Label, "refused").Inc()
	}
	f.close()
}

// close ends the flow once: its socket, its entry, its counts.
func (f *flow) close() {
	f.once.Do(func() {
		f.conn.Close()
		r := f.r
		r.mu.Lock()
		if r.flows[f.client] == f {
			delete(r.flows, f.client)
		}
		f.st.flows.Add(-1)
		if f.sticky.IsValid() {
			if s, ok := r.sticky[f.sticky]; ok {
				s.flows--
				s.expires = time.Now().Add(r.spec.Load().PersistTimeout)
				r.sticky[f.sticky] = s
			}
		}
		r.mu.Unlock()
		r.active.Dec()
	})
}
