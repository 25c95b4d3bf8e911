package h2server

import (
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

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

// newStream makes stream id, its context a child of the connection's.
func (c *Conn) newStream(id uint32) *stream {
	s := &stream{c: c, id: id, declLen: -1, recvWindow: streamWindow}
	s.cond.L = &c.mu
	s.ctx, s.cancel = context.WithCancel(c.ctx)
	return s
}

// startStream opens s with request r (whose context is s's; nil: a header
// list too large, answered 431) and runs its handler.
func (c *Conn) startStream(s *stream, r *http.Request, end bool) error {
	id := s.id
	if r != nil {
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
	s := c.newStream(1)
	r := up.Request.WithContext(s.ctx)
	r.Proto, r.ProtoMajor, r.ProtoMinor, r.Body, r.ContentLength = "HTTP/2.0", 2, 0, nil, 0
	return c.startStream(s, r, true)
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
			c.sendResetLocked(s.id, http2.ErrCodeNo)
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
		c.sendResetLocked(s.id, code)
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

// sendResetLocked queues RST_STREAM for a stream terminator ends and
// remembers it.
func (c *Conn) sendResetLocked(id uint32, code http2.ErrCode) {
	c.queueLocked(ctrlFrame{kind: ctrlReset, id: id, val: uint32(code)})
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
