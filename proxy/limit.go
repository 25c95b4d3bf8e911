package proxy

import (
	"net"
	"sync"
)

// limiter caps concurrent connections; its limit can change while it is in
// use. acquire blocks while the cap is reached, as haproxy's maxconn leaves
// excess connections waiting in the kernel's backlog.
type limiter struct {
	mu     sync.Mutex // guards the fields below
	cond   *sync.Cond
	limit  int // 0: unlimited
	active int
	closed bool
}

func newLimiter(limit int) *limiter {
	l := &limiter{limit: limit}
	l.cond = sync.NewCond(&l.mu)
	return l
}

func (l *limiter) setLimit(n int) {
	l.mu.Lock()
	l.limit = n
	l.mu.Unlock()
	l.cond.Broadcast()
}

// acquire waits for a slot and reports false once the limiter is closed.
func (l *limiter) acquire() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for !l.closed && l.limit > 0 && l.active >= l.limit {
		l.cond.Wait()
	}
	if l.closed {
		return false
	}
	l.active++
	return true
}

func (l *limiter) release() {
	l.mu.Lock()
	l.active--
	l.mu.Unlock()
	l.cond.Signal()
}

func (l *limiter) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cond.Broadcast()
}

// limitedConn gives its slot back when closed, once.
type limitedConn struct {
	net.Conn
	once sync.Once
	l    *limiter
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.l.release)
	return err
}
