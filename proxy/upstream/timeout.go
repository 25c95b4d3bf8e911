package upstream

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/terminator-proxy/terminator/proxy/sockio"
)

// timeoutConn is haproxy's "timeout server" on a member connection:
// any read or write pushes the read deadline idle into the future, so a
// member silent for that long while a request (or an upgraded tunnel) is in
// progress fails with a timeout. The deadline is re-armed as sockio.Rearm
// allows, so the effective limit lies between 7/8 idle and idle.
type timeoutConn struct {
	net.Conn
	idle  time.Duration
	rearm sockio.Rearm
	hold  atomic.Bool // while set, reads and writes leave the deadline alone
}

// release ends a hold and makes the next read or write re-arm the deadline.
func (c *timeoutConn) release() {
	c.rearm.Reset()
	c.hold.Store(false)
}

func (c *timeoutConn) extend() {
	if c.hold.Load() {
		return
	}
	if now := time.Now(); c.rearm.Due(now, c.idle) {
		_ = c.Conn.SetReadDeadline(now.Add(c.idle))
	}
}

func (c *timeoutConn) Read(p []byte) (int, error) {
	c.extend()
	return c.Conn.Read(p)
}

func (c *timeoutConn) Write(p []byte) (int, error) {
	c.extend()
	return c.Conn.Write(p)
}
