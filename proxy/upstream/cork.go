package upstream

import (
	"net"
	"runtime"
	"sync"
	"time"
)

// corkedConn gathers writes to an HTTP/2 member connection into fewer
// TLS records and system calls: every stream of a multiplexed connection
// flushes its own frames, so concurrent calls would each cost a write(2)
// toward the member. Here a Write only queues its bytes; the connection's flusher
// goroutine, woken by the first of them, yields once and then writes
// everything queued by then in one call, in order — the TCP_CORK idea
// without the kernel's 200 ms timer. Queued bytes are bounded (writers
// wait beyond maxCorked), and the first write error fails every later
// Write and closes the connection, so the HTTP/2 client's read loop sees
// it too. The flusher is owned by the connection and ends with Close.
type corkedConn struct {
	net.Conn
	mu    sync.Mutex
	cond  sync.Cond // writers waiting for room; L is &mu
	buf   []byte    // queued, in order
	spare []byte
	err   error
	kick  chan struct{} // capacity 1: the flusher has work
	done  chan struct{} // closed by Close
	once  sync.Once
	// writing is held by whoever writes to Conn (the flusher, then Close),
	// keeping the bytes in order.
	writing sync.Mutex
}

// maxCorked bounds the queued bytes of one connection.
const maxCorked = 256 << 10

func newCorkedConn(c net.Conn) *corkedConn {
	cc := &corkedConn{Conn: c, kick: make(chan struct{}, 1), done: make(chan struct{})}
	cc.cond.L = &cc.mu
	go cc.flusher()
	return cc
}

func (c *corkedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for c.err == nil && len(c.buf) > 0 && len(c.buf)+len(p) > maxCorked {
		c.cond.Wait()
	}
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	c.buf = append(c.buf, p...)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default: // already woken: it will take these bytes too
	}
	return len(p), nil
}

func (c *corkedConn) flusher() {
	for {
		select {
		case <-c.kick:
		case <-c.done:
			return
		}
		runtime.Gosched() // let the writers that are running add theirs
		// writing is taken before the bytes are, so Close, once it holds
		// it, finds every byte either written or still queued.
		c.writing.Lock()
		c.mu.Lock()
		if len(c.buf) == 0 || c.err != nil {
			c.mu.Unlock()
			c.writing.Unlock()
			continue // taken by the previous round, or closed
		}
		// The two buffers swap roles: writers fill one while the other
		// is on its way.
		b := c.buf
		c.buf = c.spare[:0]
		c.mu.Unlock()
		_, err := c.Conn.Write(b)
		c.writing.Unlock()
		c.mu.Lock()
		c.spare = b[:0]
		if err != nil && c.err == nil {
			c.err = err
		}
		c.cond.Broadcast()
		c.mu.Unlock()
		if err != nil {
			_ = c.Close()
			return
		}
	}
}

// Close stops the flusher, writes what is still queued (the last frames,
// such as a GOAWAY, after the flusher's write in flight and within a
// second) and closes the connection.
func (c *corkedConn) Close() error {
	c.once.Do(func() {
		close(c.done)
		c.writing.Lock()
		c.mu.Lock()
		rest := c.buf
		c.buf = nil
		if c.err != nil {
			rest = nil // the connection failed: nothing more gets through
		} else {
			c.err = net.ErrClosed
		}
		c.cond.Broadcast()
		c.mu.Unlock()
		if len(rest) > 0 {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Conn.Write(rest)
		}
		c.writing.Unlock()
	})
	return c.Conn.Close()
}
