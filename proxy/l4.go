package proxy

import (
	"context"
	"io"
	"net"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/terminator-proxy/terminator/proxy/lb"
	"github.com/terminator-proxy/terminator/proxy/sockio"
	"github.com/terminator-proxy/terminator/proxy/upstream"
)

// serveTCP relays one connection of a layer-4 listener (TCP, or HTTPS
// passed through) to a member of the route's pool, as haproxy's mode tcp
// does: nothing is parsed; a member that refuses the connection is
// replaced by another (retries 3 with redispatch); a PROXY header goes
// first to PROXY and PROXYV2 pools; each direction is half-closed when
// its sender finishes; the client timeout and the member timeout end a
// connection silent that long in their direction.
func (l *Listener) serveTCP(c net.Conn, st *routeState) {
	defer l.wg.Done()
	defer c.Close()
	st.counters.connsActive.Inc()
	defer st.counters.connsActive.Dec()
	pool := st.Pool
	ci := newConnInfo(c)
	if pool == nil {
		l.opts.Logger.Debug("layer-4 connection closed: no pool", "listener", st.Listener, "client", ci.clientIP)
		return
	}
	ctx, cancel := context.WithCancel(l.hard)
	defer cancel()
	m := pool.Select(nil, ci.clientIP)
	var member net.Conn
	var tried []*lb.Member
	for {
		if m == nil {
			l.opts.Logger.Warn("layer-4 connection closed: no member takes traffic", "listener", st.Listener, "pool", pool.Name)
			return
		}
		m.State().AddActive(1)
		var err error
		member, err = l.dialL4(ctx, st, pool, m, ci)
		if err == nil {
			break
		}
		m.State().AddActive(-1)
		m.Errors("connect").Inc()
		m.State().ConnectFailed()
		if tried = append(tried, m); len(tried) > maxRetries {
			l.opts.Logger.Warn("layer-4 connection closed: members refused it", "listener", st.Listener, "pool", pool.Name, "err", err)
			return
		}
		pool.CountRetry()
		m = pool.NextExcluding(ci.clientIP, tried)
	}
	defer m.State().AddActive(-1)
	defer member.Close()
	m.Requests(0).Inc()
	stop := context.AfterFunc(l.hard, func() { c.Close(); member.Close() }) // the drain's deadline
	defer stop()

	client := withIdleTimeout(c, st.ClientTimeout)
	toMember := withIdleTimeout(member, st.MemberTimeout)
	done := make(chan int64, 1)
	go func() { // owned by this call, which waits for it
		n, _ := io.Copy(toMember, client)
		closeWrite(member)
		done <- n
	}()
	out, _ := io.Copy(client, toMember)
	closeWrite(c)
	in := <-done
	st.counters.bytesIn.Add(float64(in))
	st.counters.bytesOut.Add(float64(out))
}

// dialL4 connects to m within the connect timeout and sends the PROXY
// header the pool asks for.
func (l *Listener) dialL4(ctx context.Context, st *routeState, pool *lb.Pool, m *lb.Member, ci *connInfo) (net.Conn, error) {
	d := net.Dialer{Timeout: st.ConnectTimeout}
	dial := upstream.PlainDial
	if l.opts.Forwarder != nil {
		dial = l.opts.Forwarder.dial
	}
	conn, err := dial(ctx, &d, "tcp", m.Addr)
	if err != nil {
		return nil, err
	}
	if pool.ProxyVersion() != 0 {
		h := proxyproto.HeaderProxyFromAddrs(pool.ProxyVersion(), ci.remote, ci.local)
		if _, err := h.WriteTo(conn); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

// closeWrite half-closes c's sending side, or closes it when it cannot.
func closeWrite(c net.Conn) {
	for {
		switch v := c.(type) {
		case interface{ CloseWrite() error }:
			if v.CloseWrite() == nil {
				return
			}
		case *limitedConn:
			c = v.Conn
			continue
		}
		_ = c.Close()
		return
	}
}

// withIdleTimeout re-arms c's read and write deadlines on every read and
// write, so that only silence of timeout ends the relay (0: no timeout):
// a peer that stops reading is cut off too, not only one that stops
// sending.
func withIdleTimeout(c net.Conn, timeout time.Duration) net.Conn {
	if timeout <= 0 {
		return c
	}
	dc := &deadlineConn{Conn: c, idle: timeout}
	dc.extend()
	return dc
}

// deadlineConn is withIdleTimeout's connection. Its deadline is re-armed
// as sockio.Rearm allows, as the member connections' timeout layer does
// (package upstream).
type deadlineConn struct {
	net.Conn
	idle  time.Duration
	rearm sockio.Rearm
}

func (c *deadlineConn) extend() {
	if now := time.Now(); c.rearm.Due(now, c.idle) {
		_ = c.Conn.SetDeadline(now.Add(c.idle))
	}
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	c.extend()
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	c.extend()
	return c.Conn.Write(p)
}
