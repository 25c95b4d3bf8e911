package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"

	"github.com/terminator-proxy/terminator/sni"
)

// An idle HTTP/1.x connection holds no read buffer: between requests its
// goroutine waits for the socket to become readable and only then borrows a
// reader. That is safe only when nothing is buffered above the socket:
// not in the bufio.Reader, not in crypto/tls. recordConn makes the TLS part
// checkable.

// recordBufs are recordConn's read buffers, borrowed while bytes are pending.
var recordBufs = sync.Pool{New: func() any { b := make([]byte, 4<<10); return &b }}

// connReaders are the HTTP/1.x connections' request readers.
var connReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// recordConn sits under a server tls.Conn and hands it at most one TLS
// record per Read. crypto/tls then never holds bytes of a record it has
// not been asked to read: once a Read of the tls.Conn returns less than
// the caller asked for, everything received has been delivered.
type recordConn struct {
	net.Conn
	alerts sni.AlertHold // the handshake's refusal alert, patched once its error is known
	buf    *[]byte       // nil while nothing is pending
	r, w   int
	hdr    [5]byte
	hdrN   int // header bytes of the current record seen so far
	left   int // body bytes of the current record not yet handed over
}

func (c *recordConn) Read(p []byte) (int, error) {
	if c.buf == nil {
		c.buf = recordBufs.Get().(*[]byte)
		n, err := c.Conn.Read(*c.buf)
		if n == 0 {
			c.release()
			return 0, err
		}
		c.r, c.w = 0, n // an error with data comes back on the next Read
	}
	n := c.advance((*c.buf)[c.r:c.w], len(p))
	copy(p, (*c.buf)[c.r:c.r+n])
	if c.r += n; c.r == c.w {
		c.release()
	}
	return n, nil
}

// advance walks at most max bytes of b through the record framing and
// returns how many belong to the current record.
func (c *recordConn) advance(b []byte, max int) int {
	i := 0
	for i < len(b) && i < max {
		if c.hdrN < len(c.hdr) {
			k := copy(c.hdr[c.hdrN:], b[i:min(len(b), max)])
			c.hdrN += k
			i += k
			if c.hdrN == len(c.hdr) {
				c.left = int(c.hdr[3])<<8 | int(c.hdr[4])
				if c.left == 0 {
					c.hdrN = 0
					return i
				}
			}
			continue
		}
		k := min(c.left, len(b)-i, max-i)
		c.left -= k
		i += k
		if c.left == 0 {
			c.hdrN = 0 // the record ends here
			return i
		}
	}
	return i
}

func (c *recordConn) Write(p []byte) (int, error) {
	if c.alerts.Intercept(p) {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *recordConn) release() {
	if c.buf != nil {
		recordBufs.Put(c.buf)
		c.buf = nil
	}
}

// pending reports bytes received but not yet handed to crypto/tls.
func (c *recordConn) pending() bool { return c.buf != nil }

// fillTracker sits between the request reader and the connection and
// remembers whether the last Read filled the caller's buffer (then the
// layer below may hold more).
type fillTracker struct {
	r    io.Reader
	full bool
}

func (t *fillTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.full = n == len(p)
	return n, err
}

// socketProbe looks at one socket without reading from it: wait blocks
// until it is readable holding no buffer, alive reports whether a pooled
// member connection is still open and silent. It is made once per
// connection, so a probe allocates nothing (a SyscallConn and a closure
// per call were four allocations per request).
type socketProbe struct {
	rc      syscall.RawConn
	first   bool
	ready   bool // alive: the peek found no data and no EOF
	scratch [1]byte
	waitFn  func(fd uintptr) bool
	aliveFn func(fd uintptr) bool
}

// newSocketProbe returns a probe of c's socket, or nil when c has none.
func newSocketProbe(c syscall.Conn) *socketProbe {
	if c == nil {
		return nil
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	p := &socketProbe{rc: rc}
	p.waitFn, p.aliveFn = p.waitCheck, p.aliveCheck
	return p
}

// wait blocks until the socket has bytes (or EOF, or an error) to read,
// or its read deadline passes. It costs no syscall beyond the one a
// blocking read would make: a non-blocking MSG_PEEK first, and after the
// poller's wake-up none.
func (p *socketProbe) wait() error {
	p.first = true
	return p.rc.Read(p.waitFn)
}

func (p *socketProbe) waitCheck(fd uintptr) bool {
	if !p.first {
		return true
	}
	p.first = false
	_, _, e := syscall.Recvfrom(int(fd), p.scratch[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return !errors.Is(e, syscall.EAGAIN)
}

// alive reports whether the socket is open with nothing to read: a pooled
// connection the member closed, or on which it sent bytes nobody asked
// for, must not carry another request.
func (p *socketProbe) alive() bool {
	p.ready = false
	return p.rc.Read(p.aliveFn) == nil && p.ready
}

func (p *socketProbe) aliveCheck(fd uintptr) bool {
	_, _, e := syscall.Recvfrom(int(fd), p.scratch[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	p.ready = errors.Is(e, syscall.EAGAIN)
	return true
}

// tcpOf returns the socket under the wrappers terminator puts around an
// accepted connection, or nil when a layer may buffer bytes of its own
// (a PROXY protocol reader).
func tcpOf(c net.Conn) syscall.Conn {
	for {
		switch v := c.(type) {
		case *net.TCPConn:
			return v
		case *limitedConn:
			c = v.Conn
		case *recordConn:
			c = v.Conn
		default:
			return nil
		}
	}
}
