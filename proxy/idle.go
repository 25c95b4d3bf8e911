package proxy

import (
	"bufio"
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
