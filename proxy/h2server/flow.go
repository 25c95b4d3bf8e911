package h2server

import (
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
)

// Request bodies and flow control: DATA frames are buffered per stream
// within the windows terminator advertised and credited back as the
// handler reads; a writer takes its bytes from the client's windows.

// processData buffers a DATA frame for its stream's handler.
func (c *Conn) processData(f *http2.DataFrame) error {
	id, n, data := f.StreamID, int64(f.Length), f.Data()
	if len(data) == 0 && !f.StreamEnded() {
		if err := c.budget.spend(1); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.kick() // after the unlock below
	defer c.mu.Unlock()
	if n > c.recvWindow {
		return connError{http2.ErrCodeFlowControl, "DATA beyond the connection window"}
	}
	c.recvWindow -= n
	s := c.streams[id]
	if s == nil || s.remoteDone {
		c.creditConnLocked(n) // nobody will read it
		switch {
		case id > c.maxClientID:
			return connError{http2.ErrCodeProtocol, "DATA on an idle stream"}
		case s == nil && c.resetByUs(id):
			return nil
		}
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	if n > s.recvWindow {
		c.creditConnLocked(n)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
	}
	s.recvWindow -= n
	if pad := n - int64(len(data)); pad > 0 {
		c.creditLocked(s, pad)
	}
	s.gotLen += int64(len(data))
	if s.declLen >= 0 && s.gotLen > s.declLen {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol, Cause: malformed("body longer than Content-Length")}
	}
	if s.bodyClosed {
		c.creditLocked(s, int64(len(data)))
	} else if len(data) > 0 {
		s.buf = append(s.buf, data...)
		s.cond.Signal()
	}
	if f.StreamEnded() {
		return c.endRemoteLocked(s)
	}
	return nil
}

// creditConnLocked returns n bytes of connection window once a quarter of
// the window is owed.
func (c *Conn) creditConnLocked(n int64) {
	c.recvUnacked += n
	if c.recvUnacked >= connWindow/4 {
		c.queueLocked(ctrlFrame{kind: ctrlWindow, val: uint32(c.recvUnacked)})
		c.recvWindow += c.recvUnacked
		c.recvUnacked = 0
	}
}

// creditLocked returns n bytes s's handler consumed (or that were dropped)
// to both windows.
func (c *Conn) creditLocked(s *stream, n int64) {
	c.creditConnLocked(n)
	c.creditStreamLocked(s, n)
}

func (c *Conn) creditStreamLocked(s *stream, n int64) {
	if s.remoteDone || s.reset {
		return
	}
	s.recvUnacked += n
	if s.recvUnacked >= streamWindow/4 {
		c.queueLocked(ctrlFrame{kind: ctrlWindow, id: s.id, val: uint32(s.recvUnacked)})
		s.recvWindow += s.recvUnacked
		s.recvUnacked = 0
	}
}

// dropBodyLocked discards what the handler left unread.
func (c *Conn) dropBodyLocked(s *stream) {
	s.bodyClosed = true
	if len(s.buf) > 0 {
		c.creditLocked(s, int64(len(s.buf)))
	}
	s.buf = nil
}

// requestBody is a stream's request body as the handler reads it.
type requestBody struct{ s *stream }

// Complete reports whether the client has sent the whole body (its
// END_STREAM has arrived, or the stream failed): Read will not wait.
func (b requestBody) Complete() bool {
	b.s.c.mu.Lock()
	defer b.s.c.mu.Unlock()
	return b.s.bodyErr != nil
}

func (b requestBody) Read(p []byte) (int, error) {
	s := b.s
	c := s.c
	c.mu.Lock()
	for len(s.buf) == 0 && s.bodyErr == nil {
		if err := s.waitLocked(&s.cond, s.rdl); err != nil {
			c.mu.Unlock()
			return 0, err
		}
	}
	if len(s.buf) == 0 {
		err := s.bodyErr
		tf := s.trailerFields
		s.trailerFields = nil
		c.mu.Unlock()
		if err == io.EOF {
			for _, hf := range tf {
				if k := canonicalName(hf.Name); httpguts.ValidTrailerHeader(k) {
					s.trailer[k] = append(s.trailer[k], hf.Value)
				}
			}
		}
		return 0, err
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	if len(s.buf) == 0 {
		s.buf = s.buf[:0:0] // let the reader's next append start afresh
	}
	c.creditLocked(s, int64(n))
	c.mu.Unlock()
	c.kick()
	return n, nil
}

// Close stops buffering the body; what arrives later is dropped.
func (b requestBody) Close() error {
	c := b.s.c
	c.mu.Lock()
	c.dropBodyLocked(b.s)
	c.mu.Unlock()
	c.kick()
	return nil
}

// waitLocked waits on cond (mu held) until it is signalled or deadline
// dl passes.
func (s *stream) waitLocked(cond *sync.Cond, dl time.Time) error {
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		if s.timer == nil {
			s.timer = time.AfterFunc(d, s.wake)
		} else {
			s.timer.Reset(d)
		}
	}
	cond.Wait()
	return nil
}

func (s *stream) wake() {
	s.c.mu.Lock()
	s.cond.Broadcast()
	s.c.sendCond.Broadcast()
	s.c.mu.Unlock()
}

// reserve waits until n > 0 bytes (at most want and one frame) may be
// sent on s, and takes them from both windows.
func (s *stream) reserve(want int) (int, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	flushed := false
	for {
		if s.reset || c.closed {
			return 0, errClientGone
		}
		n := min(int64(want), s.sendWindow, c.sendWindow, int64(c.maxFrame))
		if n > 0 {
			s.sendWindow -= n
			c.sendWindow -= n
			return int(n), nil
		}
		if !flushed {
			// What is buffered must reach the client, or it may never
			// see a reason to open its window.
			flushed = true
			c.mu.Unlock()
			c.lockWrite()
			c.needFlush = true
			c.unlockWrite()
			c.mu.Lock()
			continue
		}
		if err := s.waitLocked(&c.sendCond, s.wdl); err != nil {
			return 0, err
		}
	}
}
