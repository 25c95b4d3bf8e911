package h2server

import (
	"errors"
	"net/http"
	"time"

	"golang.org/x/net/http2"

	"github.com/terminator-proxy/terminator/proxy/httpwire"
)

// responseWriter is a stream's http.ResponseWriter. The head goes out
// with the first DATA frame (or alone at Flush or when the handler
// returns); a body that reaches its Content-Length ends the stream on its
// last DATA frame; trailers (http.TrailerPrefix or names the Trailer
// header declares) end it in a HEADERS frame. Nothing is flushed until
// Flush, the end of the response, or a full buffer, so a small response
// is one write system call.
type responseWriter struct {
	s        *stream
	req      *http.Request
	header   http.Header
	status   int
	headSent bool
	ended    bool
	declared int64 // Content-Length set by the handler; -1: none
	written  int64
	err      error       // sticky
	trailers http.Header // from SetTrailers
}

var errBodyTooLong = errors.New("h2server: response body longer than its Content-Length")

func (w *responseWriter) Header() http.Header { return w.header }

// SetTrailers sets trailer fields to send after the body, beside those the
// handler sets through http.TrailerPrefix or the Trailer header: a relay
// passes a member's trailers so, without re-keying each. Names must be
// canonical; fields that are never trailers are left out.
func (w *responseWriter) SetTrailers(tr http.Header) { w.trailers = tr }

// trailerFields are the trailers to send; nil for none. The map from
// SetTrailers is used as it is when nothing has to be added or dropped.
func (w *responseWriter) trailerFields() http.Header {
	tr := httpwire.Trailers(w.header)
	clean := true
	for k := range w.trailers {
		clean = clean && !httpwire.NeverTrailer(k)
	}
	if tr == nil && clean && len(w.trailers) > 0 {
		return w.trailers
	}
	for k, vs := range w.trailers {
		if len(vs) > 0 && !httpwire.NeverTrailer(k) {
			if tr == nil {
				tr = http.Header{}
			}
			tr[k] = append(tr[k], vs...)
		}
	}
	return tr
}

// WriteHeader records the status. Interim (1xx) statuses are not relayed.
func (w *responseWriter) WriteHeader(code int) {
	if w.status != 0 || code < 200 {
		return
	}
	w.status = code
}

func (w *responseWriter) bodyAllowed() bool {
	return w.req.Method != http.MethodHead && w.status != http.StatusNoContent && w.status != http.StatusNotModified
}

// writeHeadLocked writes the head; wmu is held.
func (w *responseWriter) writeHeadLocked(end bool) {
	w.headSent = true
	w.declared = httpwire.DeclaredLength(w.header)
	c := w.s.c
	c.writeHeaderBlock(w.s.id, c.encodeHead(w.status, httpwire.HeadOnly(w.header)), end, c.peerMaxFrame())
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.ended {
		return 0, errBodyTooLong
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	c := w.s.c
	if !w.headSent && (len(p) == 0 || !w.bodyAllowed()) {
		if !c.lockStream(w.s) {
			w.err = errClientGone
			return 0, w.err
		}
		w.writeHeadLocked(false)
		c.unlockWrite()
	}
	if !w.bodyAllowed() {
		return len(p), nil // HEAD, 204, 304: the body is dropped
	}
	if !w.headSent {
		w.declared = httpwire.DeclaredLength(w.header)
	}
	if w.declared >= 0 && w.written+int64(len(p)) > w.declared {
		return 0, errBodyTooLong
	}
	total := 0
	for len(p) > 0 {
		n, err := w.s.reserve(len(p))
		if err != nil {
			w.err = err
			return total, err
		}
		if !c.lockStream(w.s) {
			w.err = errClientGone
			return total, w.err
		}
		if !w.headSent {
			w.writeHeadLocked(false)
		}
		w.written += int64(n)
		end := w.declared >= 0 && w.written == w.declared && w.trailerFields() == nil
		_ = c.fr.WriteData(w.s.id, end, p[:n])
		c.unlockWrite()
		if err := c.writeError(); err != nil {
			w.err = err
			return total, err
		}
		if end {
			w.ended = true
			w.s.endLocal()
		}
		p = p[n:]
		total += n
	}
	return total, nil
}

// Flush sends what is buffered, head included.
func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError is Flush with its error, for http.ResponseController.
func (w *responseWriter) FlushError() error {
	if w.err != nil {
		return w.err
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	c := w.s.c
	if !c.lockStream(w.s) {
		w.err = errClientGone
		return w.err
	}
	if !w.headSent {
		w.writeHeadLocked(false)
	}
	c.needFlush = true
	c.unlockWrite()
	if err := c.writeError(); err != nil {
		w.err = err
	}
	return w.err
}

// SetReadDeadline bounds the handler's wait for request body data.
func (w *responseWriter) SetReadDeadline(t time.Time) error {
	w.s.c.mu.Lock()
	w.s.rdl = t
	w.s.cond.Broadcast() // a pending Read waits under the new deadline, as on a net.Conn
	w.s.c.mu.Unlock()
	return nil
}

// SetWriteDeadline bounds the handler's wait for the client's flow
// control window.
func (w *responseWriter) SetWriteDeadline(t time.Time) error {
	w.s.c.mu.Lock()
	w.s.wdl = t
	w.s.c.mu.Unlock()
	return nil
}

// finish ends the response after the handler returned: a body shorter
// than its Content-Length is reset, anything else ends with its trailers
// or an empty END_STREAM frame.
func (w *responseWriter) finish() {
	if w.err != nil {
		w.s.c.resetStream(w.s, http2.ErrCodeInternal)
		return
	}
	c := w.s.c
	if w.ended {
		c.lockWrite()
		c.needFlush = true
		c.unlockWrite()
		return
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.headSent && w.declared >= 0 && w.bodyAllowed() && w.written < w.declared {
		c.resetStream(w.s, http2.ErrCodeInternal)
		return
	}
	tr := w.trailerFields()
	if !c.lockStream(w.s) {
		return
	}
	switch {
	case !w.headSent && tr == nil:
		w.writeHeadLocked(true)
	case !w.headSent:
		w.writeHeadLocked(false)
		c.writeHeaderBlock(w.s.id, c.encodeHead(0, tr), true, c.peerMaxFrame())
	case tr != nil:
		c.writeHeaderBlock(w.s.id, c.encodeHead(0, tr), true, c.peerMaxFrame())
	default:
		_ = c.fr.WriteData(w.s.id, true, nil)
	}
	c.needFlush = true
	c.unlockWrite()
	w.ended = true
	w.s.endLocal()
}

// lockStream takes the write lock for a frame of s and reports whether
// s may still be written: not reset by either side, its connection open.
// A reset decided while the lock is held is written after the frame.
func (c *Conn) lockStream(s *stream) bool {
	c.lockWrite()
	c.mu.Lock()
	ok := !s.reset && !c.closed
	c.mu.Unlock()
	if !ok {
		c.unlockWrite()
	}
	return ok
}

// endLocal records terminator's END_STREAM on s.
// Once both sides ended, the stream is closed, its handler's last steps
// notwithstanding: a frame on it now is a connection error.
func (s *stream) endLocal() {
	c := s.c
	c.mu.Lock()
	s.localDone = true
	if s.remoteDone && c.streams[s.id] == s {
		c.removeLocked(s, nil)
	}
	c.mu.Unlock()
}

func (c *Conn) writeError() error {
	if p := c.writeErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (c *Conn) peerMaxFrame() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxFrame
}
