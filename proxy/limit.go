package proxy

import (
	"net"
	"sync"
	"time"
)

// limiter caps concurrent connections; its limit can change while it is in
// use. A connection over the cap waits for a slot for a while and is then
// refused, as with haproxy's maxconn and timeout queue.
type limiter struct {
	mu     sync.Mutex // guards the fields below
	limit  int        // 0: unlimited
	active int
	closed bool
	wake   chan struct{} // closed and replaced whenever a slot may have freed
}

func newLimiter(limit int) *limiter {
	return &limiter{limit: limit, wake: make(chan struct{})}
}

// broadcastLocked wakes every waiter; call with l.mu held.
func (l *limiter) broadcastLocked() {
	close(l.wake)
	l.wake = make(chan struct{})
}

func (l *limiter) setLimit(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.limit = n
	l.broadcastLocked()
}

// acquire takes a slot, waiting at most wait; it reports false on timeout
// or once the limiter is closed.
func (l *limiter) acquire(wait time.Duration) bool {
	var timer *time.Timer
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return false
		}
		if l.limit <= 0 || l.active < l.limit {
			l.active++
			l.mu.Unlock()
			if timer != nil {
				timer.Stop()
			}
			return true
		}
		ch := l.wake
		l.mu.Unlock()
		if timer == nil {
			if wait <= 0 {
				return false
			}
			timer = time.NewTimer(wait)
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		}
	}
}

func (l *limiter) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.active--
	l.broadcastLocked()
}

func (l *limiter) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.broadcastLocked()
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
