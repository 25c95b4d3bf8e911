package h2server

import (
	"bufio"
	"errors"
	"sync"
	"time"
)

// The read side's buffer: borrowed while there is something to read,
// given back while the connection is idle.

// readers lend connections their read buffer while they have something
// to read.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}

// connReader is the Framer's reader: the borrowed buffer.
type connReader struct{ c *Conn }

func (r connReader) Read(p []byte) (int, error) {
	c := r.c
	if c.br == nil {
		c.br = readers.Get().(*bufio.Reader)
		c.br.Reset(&c.src)
	}
	if c.frameStart {
		c.frameStart = false
		if c.o.WaitIdle != nil && c.br.Buffered() == 0 {
			return c.boundaryRead(p)
		}
	}
	return c.br.Read(p)
}

func (c *Conn) releaseReader() {
	if c.br != nil {
		c.br.Reset(nil)
		readers.Put(c.br)
		c.br = nil
	}
}

// idle reports, between frames, whether no stream is open and nothing
// received waits in the read buffer or, as far as this layer can tell,
// below it.
func (c *Conn) idle() bool {
	if (c.br != nil && c.br.Buffered() > 0) || c.src.Full() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.streams) == 0 && !c.closed
}

// The read loop usually blocks for the next frame while a response is
// still being written, holding its buffer; when that last stream ends,
// poke interrupts the wait (a read deadline in the past) so the loop can
// give the buffer back and wait idle. Only a wait at a frame boundary with
// nothing of the frame read is interrupted: pokeMu makes the interruption
// and the loop's restoring of its deadline one step, so a read that
// returned data at the same moment never meets the past deadline.

var errPoked = errors.New("h2server: read interrupted to wait idle")

// poke interrupts a read loop blocked at a frame boundary.
func (c *Conn) poke() {
	c.pokeMu.Lock()
	if c.blocked && !c.poked {
		c.poked = true
		_ = c.nc.SetReadDeadline(time.Now())
	}
	c.pokeMu.Unlock()
}

// boundaryRead is connReader's read at a frame boundary with an empty
// buffer: the one a poke may interrupt.
func (c *Conn) boundaryRead(p []byte) (int, error) {
	c.pokeMu.Lock()
	c.blocked = true
	c.pokeMu.Unlock()
	n, err := c.br.Read(p)
	c.pokeMu.Lock()
	c.blocked = false
	poked := c.poked
	c.poked = false
	if poked {
		c.setIdleDeadline() // the one the poke replaced
	}
	c.pokeMu.Unlock()
	if poked && n == 0 {
		return 0, errPoked
	}
	return n, err
}
