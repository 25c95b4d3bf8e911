package h2server

import (
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// stream is one request and its response. Fields below cond are guarded
// by the connection's mu.
type stream struct {
	c      *Conn
	id     uint32
	ctx    context.Context
	cancel context.CancelFunc

	cond          sync.Cond // body readers; L is &c.mu
	sendWindow    int64
	recvWindow    int64 // what the client may still send
	recvUnacked   int64 // consumed, not yet returned
	buf           []byte
	bodyErr       error // io.EOF once the client ended the stream
	bodyClosed    bool  // the handler is done with the body: data is dropped
	declLen       int64 // Content-Length, -1 when absent
	gotLen        int64
	trailer       http.Header         // the request's, filled at the body's EOF
	trailerFields []hpack.HeaderField // received, not yet in trailer
	remoteDone    bool                // the client sent END_STREAM
	localDone     bool                // terminator sent END_STREAM
	reset         bool                // reset by either side, or the connection ended
	handlerDone   bool
	rdl, wdl      time.Time // the handler's read and write deadlines
	timer         *time.Timer
}

// startStream opens stream id with request r (nil: a header list too
// large, answered 431) and runs its handler.
func (c *Conn) startStream(id uint32, r *http.Request, end bool) error {
	s := &stream{c: c, id: id, declLen: -1, recvWindow: streamWindow}
	s.cond.L = &c.mu
	s.ctx, s.cancel = context.WithCancel(c.ctx)
	if r != nil {
		r = r.WithContext(s.ctx)
		s.declLen, s.trailer = r.ContentLength, r.Trailer
		if end {
			r.Body = http.NoBody
			if r.ContentLength > 0 {
				s.cancel()
				return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol, Cause: malformed("Content-Length without a body")}
			}
			r.ContentLength = 0
		} else {
			r.Body = requestBody{s}
		}
	}
	c.mu.Lock()
	s.sendWindow = c.initWindow
	if end {
		s.remoteDone, s.bodyErr = true, io.EOF
	}
	if len(c.streams) == 0 {
		_ = c.nc.SetReadDeadline(time.Time{}) // the idle timeout stops while streams are open
	}
	c.streams[id] = s
	c.opened++
	c.handlers++
	c.handlersWG.Add(1)
	parked := c.idleWorkers > 0
	if parked {
		c.idleWorkers--
	}
	c.mu.Unlock()
	c.busy.Add(1)
	job := streamJob{s: s, r: r}
	if parked {
		select {
		case c.work <- job:
			return nil
		case <-c.ctx.Done(): // the worker left: the connection is ending
		}
	}
	go c.worker(job)
	return nil
}

// streamJob is a stream for a worker to serve (r nil: refuse it 431).
type streamJob struct {
	s *stream
	r *http.Request
}

// maxIdleWorkers bounds the worker goroutines a connection keeps parked
// between requests (none once it has no open stream): a reused worker
// keeps the stack it grew, where a new goroutine per request grows a
// fresh one each time (copystack was 6% of a gRPC profile).
const maxIdleWorkers = 4

// worker serves jobs until it is not needed any more. It exits when the
// connection ends, so Serve's wait covers it.
func (c *Conn) worker(job streamJob) {
	for {
		if job.r == nil {
			c.refuseTooLarge(job.s)
		} else {
			c.runStream(job.s, job.r)
		}
		c.mu.Lock()
		limit := maxIdleWorkers
		if len(c.streams) == 0 {
			limit = 0 // an idle connection holds no worker's stack
		}
		if c.closed || c.idleWorkers >= limit {
			c.mu.Unlock()
			return
		}
		c.idleWorkers++
		c.mu.Unlock()
		select {
		case job = <-c.work:
			if job.s == nil {
				return // trimmed: the connection went idle
			}
		case <-c.ctx.Done():
			return
		}
	}
}

// trimWorkersLocked lets the parked workers go once the connection has no
// open stream. A worker not yet parked is left (it sees no open stream
// and exits on its own).
func (c *Conn) trimWorkersLocked() {
	for c.idleWorkers > 0 {
		select {
		case c.work <- streamJob{}:
			c.idleWorkers--
		default:
			return
		}
	}
}

// startUpgraded makes the request that upgraded the connection stream 1.
func (c *Conn) startUpgraded(up *Upgrade) error {
	p := up.Settings
	c.mu.Lock()
	for ; len(p) >= 6; p = p[6:] {
		s := http2.Setting{ID: http2.SettingID(binary.BigEndian.Uint16(p)), Val: binary.BigEndian.Uint32(p[2:])}
		if err := s.Valid(); err != nil {
			c.mu.Unlock()
			return connError{http2.ErrCodeProtocol, "invalid HTTP2-Settings"}
		}
		if err := c.applySettingLocked(s); err != nil {
			c.mu.Unlock()
			return err
		}
	}
	c.maxClientID = 1
	c.mu.Unlock()
	r := *up.Request
	r.Proto, r.ProtoMajor, r.ProtoMinor, r.Body, r.ContentLength = "HTTP/2.0", 2, 0, nil, 0
	return c.startStream(1, &r, true)
}

// runStream serves one request and ends its stream.
func (c *Conn) runStream(s *stream, r *http.Request) {
	w := &responseWriter{s: s, req: r, header: make(http.Header, 8), declared: -1}
	if c.serve(w, r) {
		w.finish()
	} else {
		c.resetStream(s, http2.ErrCodeInternal)
	}
	c.handlerDone(s)
}

// serve runs the handler and reports whether it returned normally; a
// panic (http.ErrAbortHandler included) resets the stream as net/http does.
func (c *Conn) serve(w *responseWriter, r *http.Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				c.o.Logger.Error("panic serving HTTP/2 request", "panic", p, "stack", string(debug.Stack()))
			}
			ok = false
		}
	}()
	c.o.Handler.ServeHTTP(w, r)
	return true
}

// refuseTooLarge answers a request whose header list was too large.
func (c *Conn) refuseTooLarge(s *stream) {
	c.mu.Lock()
	c.queueLocked(ctrlFrame{kind: ctrlTooLarge, id: s.id})
	s.localDone = true
	c.mu.Unlock()
	c.kick()
	c.handlerDone(s)
}

// handlerDone ends s once its handler returned: a client still sending
// is told to stop (RST_STREAM NO_ERROR, RFC 9113 §8.1), and what it sent
// but nobody read is credited back.
func (c *Conn) handlerDone(s *stream) {
	c.mu.Lock()
	s.handlerDone = true
	c.handlers--
	if c.streams[s.id] == s {
		if !s.remoteDone {
			c.queueLocked(ctrlFrame{kind: ctrlReset, id: s.id, val: uint32(http2.ErrCodeNo)})
			c.noteReset(s.id)
		}
		c.removeLocked(s, nil)
	}
	c.dropBodyLocked(s)
	c.mu.Unlock()
	c.busy.Add(-1)
	s.cancel()
	if s.timer != nil {
		s.timer.Stop()
	}
	c.handlersWG.Done()
	c.kick()
}

// resetStream sends RST_STREAM for s unless it is already closed.
func (c *Conn) resetStream(s *stream, code http2.ErrCode) {
	c.mu.Lock()
	if c.streams[s.id] == s {
		c.queueLocked(ctrlFrame{kind: ctrlReset, id: s.id, val: uint32(code)})
		c.noteReset(s.id)
		c.removeLocked(s, errClientGone)
	}
	c.mu.Unlock()
	c.kick()
}

// removeLocked takes s out of the open streams. A non-nil err is a reset:
// the handler's context is cancelled and its body and writes fail.
func (c *Conn) removeLocked(s *stream, err error) {
	delete(c.streams, s.id)
	if err != nil {
		s.closeLocked(err)
	}
	if len(c.streams) == 0 {
		c.trimWorkersLocked()
		if c.goingAway {
			c.closeRead()
		} else if !c.closed {
			c.setIdleDeadline()
			if c.o.WaitIdle != nil {
				c.poke()
			}
		}
	}
}

// closeLocked fails whatever the handler is waiting for on s.
func (s *stream) closeLocked(err error) {
	s.reset = true
	if s.bodyErr == nil {
		s.bodyErr = err
	}
	s.cancel()
	s.cond.Broadcast()
	s.c.sendCond.Broadcast()
}

// endRemoteLocked records the client's END_STREAM on s.
func (c *Conn) endRemoteLocked(s *stream) error {
	if s.declLen >= 0 && s.gotLen != s.declLen {
		return http2.StreamError{StreamID: s.id, Code: http2.ErrCodeProtocol, Cause: malformed("body length differs from Content-Length")}
	}
	s.remoteDone = true
	if s.bodyErr == nil {
		s.bodyErr = io.EOF
	}
	s.cond.Broadcast()
	if s.localDone {
		c.removeLocked(s, nil)
	}
	return nil
}

// recentResets remembers the streams terminator reset lately: frames the
// client had already sent on them are dropped without another reset.
const recentResets = 32

func (c *Conn) noteReset(id uint32) {
	c.resetIDs[c.resetNext%recentResets] = id
	c.resetNext++
}

func (c *Conn) resetByUs(id uint32) bool {
	for _, v := range c.resetIDs {
		if v == id {
			return true
		}
	}
	return false
}

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
		c.creditConnLocked(pad)
		c.creditStreamLocked(s, pad)
	}
	s.gotLen += int64(len(data))
	if s.declLen >= 0 && s.gotLen > s.declLen {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol, Cause: malformed("body longer than Content-Length")}
	}
	if s.bodyClosed {
		c.creditConnLocked(int64(len(data)))
		c.creditStreamLocked(s, int64(len(data)))
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
		c.creditConnLocked(int64(len(s.buf)))
		c.creditStreamLocked(s, int64(len(s.buf)))
	}
	s.buf = nil
}

// requestBody is a stream's request body as the handler reads it.
type requestBody struct{ s *stream }

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
	c.creditConnLocked(int64(n))
	c.creditStreamLocked(s, int64(n))
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
