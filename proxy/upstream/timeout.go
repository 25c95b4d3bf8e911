package upstream

import (
	"net"
	"sync/atomic"
	"time"
)

// timeoutConn is haproxy's "timeout server" on a member connection:
// any read or write pushes the read deadline idle into the future, so a
// member silent for that long while a request (or an upgraded tunnel) is in
// progress fails with a timeout. The deadline is re-armed at most every
// idle/8, so the effective limit lies between 7/8 idle and idle, and the
// common path costs no timer operation.
type timeoutConn struct {
	net.Conn
	idle time.Duration
	last atomic.Int64 // unix nanos of the last re-arm
	hold atomic.Bool  // while set, reads and writes leave the deadline alone
}

// release ends a hold and makes the next read or write re-arm the deadline.
func (c *timeoutConn) release() {
	c.last.Store(0)
	c.hold.Store(false)
}

func (c *timeoutConn) extend() {
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

func (c *timeoutConn) Read(p []byte) (int, error) {
	c.extend()
	return c.Conn.Read(p)
}

func (c *timeoutConn) Write(p []byte) (int, error) {
	c.extend()
	return c.Conn.Write(p)
}
