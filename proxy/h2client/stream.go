package h2client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/terminator-proxy/terminator/proxy/sockio"
)

// Request is one request as RoundTrip sends it.
type Request struct {
	Method, Scheme, Authority, Path string
	// Header holds the fields the member gets; connection-specific ones
	// and Content-Length are left out, TE is sent only as "trailers".
	Header http.Header
	// Body is the request body, nil for none. BodyComplete, when set,
	// reports whether the rest of Body is at hand (its reads will not
	// block): such a body is written by RoundTrip itself, as far as the
	// flow-control windows allow, before it waits for the answer; any
	// other is copied by a goroutine of the stream, which ends when Body
	// returns EOF or an error or the stream ends.
	Body         io.Reader
	BodyComplete func() bool
	// ContentLength above zero is sent as content-length.
	ContentLength int64
	// Abort, when set, makes a pending Read of Body return (and later
	// ones fail): Body.Close calls it when the body is still being copied,
	// then waits for the copy to end. Without it a Read must not outlive
	// the stream by long.
	Abort func()
	// Trailer, when set, is called after Body's EOF for the trailer
	// fields to send.
	Trailer func() http.Header
	// Silence bounds the member's silence on the stream (0: none): from
	// the request to the response head, then between its frames while
	// the caller reads. The stream is then reset and fails with a
	// SilenceError. It is re-armed at most every Silence/8, so it fires
	// between 7/8 and all of it after the last sign of life.
	Silence time.Duration
}

// Response is a member's answer. Body must be closed; Trailer is filled
// once Body has returned io.EOF.
type Response struct {
	Status  int
	Header  http.Header
	Trailer http.Header
	Body    *Body
}

// SilenceError is a stream whose member stayed silent for Request.Silence.
type SilenceError struct{ D time.Duration }

func (e SilenceError) Error() string {
	return fmt.Sprintf("the member sent nothing on the stream for %s", e.D)
}

// Timeout reports true: the error is a timeout (a 504 before any
// answer). With Temporary, SilenceError is a net.Error.
func (SilenceError) Timeout() bool { return true }

// Temporary reports true, as net's timeouts do.
func (SilenceError) Temporary() bool { return true }

// StreamError is a stream the member reset.
type StreamError struct{ Code http2.ErrCode }

func (e StreamError) Error() string { return "the member reset the stream: " + e.Code.String() }

// stream is one request's state; the fields after wake are guarded by
// c.mu.
type stream struct {
	c        *Conn
	ctx      context.Context
	id       uint32
	isHead   bool
	wake     chan struct{} // capacity 1: the response side has news
	sendWake chan struct{} // capacity 1: the body sender may go on; nil without one (set under c.mu)
	sent     chan struct{} // closed when the body sender ends; nil without one
	abort    func()        // Request.Abort
	resp     Response      // what RoundTrip returns, made with the stream
	body     Body
	silence  time.Duration // Request.Silence
	timer    *time.Timer   // fires silent; nil without a bound
	rearm    sockio.Rearm  // when the timer was last re-armed

	status     int // 0 until the response head
	header     http.Header
	trailer    http.Header
	data       []byte // received, unread from off
	off        int
	ended      bool  // END_STREAM received
	err        error // reset, malformed response or connection failure
	declared   int64 // response content-length, -1 if none
	received   int64
	recvWindow int32
	unacked    int32 // read, not yet returned to the member
	sendWindow int32
	sentEnd    bool // END_STREAM sent
	resetSent  bool // RST_STREAM sent or received: nothing more to send
	gone       bool // out of c.streams
	closed     bool // the caller is done with it
}

func (s *stream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *stream) signalSend() {
	select {
	case s.sendWake <- struct{}{}:
	default:
	}
}

// touchLocked re-arms the silence timer when an eighth of it has passed
// since the last time; c.mu is held.
func (s *stream) touchLocked() {
	if s.timer == nil {
		return
	}
	if s.rearm.Due(time.Now(), s.silence) {
		s.timer.Reset(s.silence)
	}
}

// silent runs on the silence timer: a stream still waiting for its member
// is reset and fails with a SilenceError.
func (s *stream) silent() {
	c := s.c
	c.mu.Lock()
	if !s.closed && !s.ended && s.err == nil {
		c.resetLocked(s, http2.ErrCodeCancel, SilenceError{s.silence})
	}
	c.mu.Unlock()
	c.kick()
}

// failLocked ends s with err; c.mu is held.
func (s *stream) failLocked(err error) {
	if s.err == nil {
		s.err = err
	}
	s.gone = true
	s.signal()
	s.signalSend()
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// RoundTrip sends r on a stream reserved with Reserve (which it uses up,
// successful or not) and returns the response head. ctx ends the stream:
// it resets it when done before the stream is; r.Silence bounds the
// member's silence on it.
func (c *Conn) RoundTrip(ctx context.Context, r *Request) (*Response, error) {
	s := &stream{c: c, ctx: ctx, isHead: r.Method == http.MethodHead, wake: make(chan struct{}, 1), declared: -1, recvWindow: streamWindow}
	c.lockWrite()
	c.mu.Lock()
	if c.err != nil || c.nextID > maxStreamID {
		err := c.err
		if err == nil {
			err = errors.New("stream IDs used up") // reserved alongside the last one
		}
		c.mu.Unlock()
		c.unlockWrite()
		c.release()
		return nil, fmt.Errorf("%w: %w", ErrUnprocessed, err)
	}
	limit, maxFrame := c.peerMaxList, c.maxFrame
	if c.tableSize >= 0 {
		c.enc.SetMaxDynamicTableSizeLimit(uint32(c.tableSize))
		c.tableSize = -1
	}
	c.mu.Unlock()
	if err := c.encodeHead(r, limit); err != nil {
		c.unlockWrite()
		c.release()
		return nil, err
	}
	s.id = c.nextID
	c.nextID += 2
	c.mu.Lock()
	if r.Silence > 0 {
		s.silence = r.Silence
		s.rearm.Armed(time.Now())
		s.timer = time.AfterFunc(r.Silence, s.silent)
	}
	s.sendWindow = c.peerWindow // with the registration: a SETTINGS change applies to it from now on
	c.streams[s.id] = s
	c.opened.Store(s.id)
	if c.nextID > maxStreamID {
		c.goAway = true // IDs used up: this connection takes no more
	}
	c.mu.Unlock()
	end := r.Body == nil
	c.writeBlock(s.id, c.hbuf.b, end, maxFrame)
	s.sentEnd = end
	async := !end
	if !end && r.BodyComplete != nil && r.BodyComplete() {
		async = !s.sendInline(r, maxFrame)
	}
	c.unlockWrite()
	if async {
		s.sent, s.abort = make(chan struct{}), r.Abort
		c.mu.Lock()
		s.sendWake = make(chan struct{}, 1)
		c.mu.Unlock()
		go s.sendBody(r, maxFrame)
	}
	if err := s.awaitHead(); err != nil {
		s.close()
		return nil, err
	}
	c.mu.Lock()
	s.resp = Response{Status: s.status, Header: s.header, Body: &s.body}
	c.mu.Unlock()
	s.body = Body{s: s}
	return &s.resp, nil
}

// awaitHead waits for the response head, the stream's end or ctx's.
func (s *stream) awaitHead() error {
	for {
		s.c.mu.Lock()
		status, err := s.status, s.err
		s.c.mu.Unlock()
		switch {
		case status != 0:
			return nil
		case err != nil:
			return err
		}
		select {
		case <-s.wake:
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
	}
}

// sendInline writes a complete body under the write lock as far as the
// windows allow, reporting whether it got to the end (false: the rest is
// left to sendBody).
func (s *stream) sendInline(r *Request, maxFrame uint32) bool {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	for {
		n := s.takeWindow(int32(min(maxFrame, uint32(len(*bp)))))
		if n == 0 {
			return false
		}
		m, err := io.ReadFull(r.Body, (*bp)[:n])
		s.giveBack(n - int32(m))
		end := err != nil
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			if tr := trailerOf(r); len(tr) > 0 {
				if m > 0 {
					_ = s.c.fr.WriteData(s.id, false, (*bp)[:m])
				}
				s.writeTrailers(tr, maxFrame)
				return true
			}
			_ = s.c.fr.WriteData(s.id, true, (*bp)[:m])
		case err != nil:
			s.resetLocked(http2.ErrCodeCancel)
			return true
		default:
			_ = s.c.fr.WriteData(s.id, false, (*bp)[:m])
		}
		if end {
			s.markSent()
			return true
		}
	}
}

func trailerOf(r *Request) http.Header {
	if r.Trailer == nil {
		return nil
	}
	return r.Trailer()
}

// writeTrailers ends the stream with trailer fields; wmu is held. Fields
// HTTP/2 cannot carry reset the stream instead.
func (s *stream) writeTrailers(tr http.Header, maxFrame uint32) {
	if err := s.c.encodeTrailers(tr); err != nil {
		s.resetLocked(http2.ErrCodeInternal)
		return
	}
	s.c.writeBlock(s.id, s.c.hbuf.b, true, maxFrame)
	s.markSent()
}

func (s *stream) markSent() {
	s.c.mu.Lock()
	s.sentEnd = true
	s.c.mu.Unlock()
}

// resetLocked resets the stream from the write side (wmu held): the body
// could not be sent.
func (s *stream) resetLocked(code http2.ErrCode) {
	s.c.mu.Lock()
	already := s.resetSent
	s.resetSent = true
	s.c.mu.Unlock()
	if !already {
		_ = s.c.fr.WriteRSTStream(s.id, code)
	}
}

// takeWindow takes up to max bytes of send window without waiting; 0
// when there is none (or the stream can send no more).
func (s *stream) takeWindow(max int32) int32 {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.gone || s.resetSent || c.err != nil {
		return 0
	}
	n := min(max, c.sendWindow, s.sendWindow)
	if n <= 0 {
		return 0
	}
	c.sendWindow -= n
	s.sendWindow -= n
	return n
}

// giveBack returns window taken but not used.
func (s *stream) giveBack(n int32) {
	if n <= 0 {
		return
	}
	s.c.mu.Lock()
	s.c.sendWindow += n
	s.sendWindow += n
	s.c.mu.Unlock()
}

// sendBody copies the rest of r.Body to the stream, waiting for window
// as needed. It ends with the body, the stream or the connection. Window
// is taken only for bytes already read, so a client slow to send its body
// holds none that other streams could use.
func (s *stream) sendBody(r *Request, maxFrame uint32) {
	defer close(s.sent)
	c := s.c
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := (*bp)[:min(len(*bp), int(maxFrame))]
	for {
		m, err := r.Body.Read(buf)
		for p := buf[:m]; len(p) > 0; {
			n := s.takeWindow(int32(len(p)))
			if n == 0 {
				if s.over() {
					return
				}
				select {
				case <-s.sendWake:
				case <-s.ctx.Done():
					return // the response side resets the stream
				}
				continue
			}
			c.lockWrite()
			over := s.over()
			if !over {
				_ = c.fr.WriteData(s.id, false, p[:n])
			}
			c.unlockWrite()
			if over {
				return
			}
			p = p[n:]
		}
		if err == nil {
			continue
		}
		var tr http.Header
		if err == io.EOF {
			tr = trailerOf(r)
		}
		c.lockWrite()
		switch {
		case s.over():
		case err != io.EOF:
			s.resetLocked(http2.ErrCodeCancel) // the client's body failed
		case len(tr) > 0:
			s.writeTrailers(tr, maxFrame)
		default:
			_ = c.fr.WriteData(s.id, true, nil)
			s.markSent()
		}
		c.unlockWrite()
		return
	}
}

// over reports whether the stream can send nothing more.
func (s *stream) over() bool {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.gone || s.resetSent || s.c.err != nil
}

// close ends the stream from the caller's side: a stream still open
// either way is reset, DATA the caller never read is returned to the
// connection's window, a body still being copied is aborted and waited
// for, and the stream's slot is given back. It is idempotent.
func (s *stream) close() {
	c := s.c
	c.mu.Lock()
	if s.closed {
		c.mu.Unlock()
		return
	}
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	reset := !s.gone && !s.resetSent && !(s.ended && s.sentEnd)
	s.resetSent = true
	if !s.gone {
		delete(c.streams, s.id)
		s.gone = true
		s.signalSend()
	}
	c.recvUnacked += int32(len(s.data) - s.off)
	s.data, s.off = nil, 0
	if reset {
		c.queueLocked(ctrlFrame{kind: ctrlReset, id: s.id, val: uint32(http2.ErrCodeCancel)})
	}
	c.ackConnLocked()
	c.mu.Unlock()
	c.kick()
	if s.sent != nil {
		select {
		case <-s.sent:
		default:
			if s.abort != nil {
				s.abort()
			}
			<-s.sent
		}
	}
	c.release()
}

// ackConnLocked queues a connection WINDOW_UPDATE once a quarter of the
// window has been read; c.mu is held.
func (c *Conn) ackConnLocked() {
	if c.recvUnacked >= connWindow/4 && c.err == nil {
		c.queueLocked(ctrlFrame{kind: ctrlWindow, val: uint32(c.recvUnacked)})
		c.recvWindow += c.recvUnacked
		c.recvUnacked = 0
	}
}

// Body is a response body; it is not safe for concurrent use.
type Body struct{ s *stream }

// Read reads response DATA as it arrives; io.EOF once the member ended
// the stream (Response.Trailer is then set), the stream's error if it
// was reset or the connection failed, ctx's error when ctx is done.
func (b *Body) Read(p []byte) (int, error) {
	s := b.s
	c := s.c
	c.mu.Lock()
	for s.off == len(s.data) && !s.ended && s.err == nil {
		c.mu.Unlock()
		select {
		case <-s.wake:
		case <-s.ctx.Done():
			return 0, s.ctx.Err()
		}
		c.mu.Lock()
	}
	if s.off < len(s.data) {
		s.touchLocked() // the caller is reading: a member held back by flow control is not silent
		n := copy(p, s.data[s.off:])
		s.off += n
		if s.off == len(s.data) {
			s.data, s.off = s.data[:0], 0
		}
		c.recvUnacked += int32(n) // per read: streams never starve each other of the connection's window
		s.unacked += int32(n)
		if !s.ended && !s.gone && s.unacked >= streamWindow/2 {
			c.queueLocked(ctrlFrame{kind: ctrlWindow, id: s.id, val: uint32(s.unacked)})
			s.recvWindow += s.unacked
			s.unacked = 0
		}
		c.ackConnLocked()
		c.mu.Unlock()
		c.kick()
		return n, nil
	}
	err := s.err
	if err == nil {
		s.resp.Trailer = s.trailer
		err = io.EOF
	}
	c.mu.Unlock()
	return 0, err
}

// Ready reports whether Read would return without waiting: DATA is
// buffered, or the stream has ended or failed. A relay flushes what it
// wrote only when the answer is no, so that a response arriving whole
// (gRPC's DATA and trailers) leaves in one write.
func (b *Body) Ready() bool {
	s := b.s
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.off < len(s.data) || s.ended || s.err != nil
}

// Sending reports whether the request body is still being copied to the
// member by the stream's goroutine (Close would wait for it).
func (b *Body) Sending() bool {
	if b.s.sent == nil {
		return false
	}
	select {
	case <-b.s.sent:
		return false
	default:
		return true
	}
}

// Close ends the stream; see stream.close.
func (b *Body) Close() error {
	b.s.close()
	return nil
}

// malformed is a response the member got wrong on one stream.
func malformed(id uint32, format string, args ...any) error {
	return fmt.Errorf("malformed response on stream %d: %s", id, fmt.Sprintf(format, args...))
}
