package h2client

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// connError is the member breaking the protocol for the whole connection:
// it gets a GOAWAY with code and the connection closes.
type connError struct {
	code http2.ErrCode
	msg  string
}

func (e connError) Error() string {
	return fmt.Sprintf("the member broke HTTP/2 (%s): %s", e.code, e.msg)
}

// readLoop reads the member's frames until the connection ends; it is the
// connection's only reader and is owned by it (Close waits for it).
func (c *Conn) readLoop() {
	defer close(c.readDone)
	err := c.readFrames()
	var ce connError
	if errors.As(err, &ce) {
		// Written before the close, waiting for the write lock if need
		// be (a writer holding it is bounded by the write deadline).
		c.lockWrite()
		_ = c.fr.WriteGoAway(0, ce.code, nil)
		c.unlockWrite()
	}
	c.fail(err)
}

func (c *Conn) readFrames() error {
	first := true
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				c.resetStream(se.StreamID, se.Code, malformed(se.StreamID, "%v", err))
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				detail := "frame error"
				if d := c.fr.ErrorDetail(); d != nil {
					detail = d.Error()
				}
				return connError{http2.ErrCode(ce), detail}
			}
			if errors.Is(err, http2.ErrFrameTooLarge) {
				return connError{http2.ErrCodeFrameSize, "frame larger than SETTINGS_MAX_FRAME_SIZE"}
			}
			return fmt.Errorf("reading from the member: %w", err)
		}
		c.lastRead.Store(time.Now().UnixNano())
		if first {
			if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
				return connError{http2.ErrCodeProtocol, "the first frame is not SETTINGS"}
			}
			first = false
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			err = c.onHeaders(f)
		case *http2.DataFrame:
			err = c.onData(f)
		case *http2.WindowUpdateFrame:
			err = c.onWindowUpdate(f)
		case *http2.SettingsFrame:
			err = c.onSettings(f)
		case *http2.PingFrame:
			c.onPing(f)
		case *http2.RSTStreamFrame:
			c.onReset(f)
		case *http2.GoAwayFrame:
			c.onGoAway(f)
		case *http2.PushPromiseFrame:
			err = connError{http2.ErrCodeProtocol, "PUSH_PROMISE though SETTINGS_ENABLE_PUSH is 0"}
		}
		if err != nil {
			return err
		}
		c.mu.Lock()
		flood := len(c.ctrl) > maxControlQueue
		c.mu.Unlock()
		if flood {
			return connError{http2.ErrCodeEnhanceYourCalm, "the member does not read the answers to its control frames"}
		}
		c.kick()
	}
}

// stream returns the open stream id, or nil for a closed one; an ID never
// opened is a connection error (RFC 9113 section 5.1: idle stream).
func (c *Conn) stream(id uint32) (*stream, error) {
	if id%2 == 0 || id > c.opened.Load() {
		return nil, connError{http2.ErrCodeProtocol, fmt.Sprintf("frame on stream %d, which was never opened", id)}
	}
	c.mu.Lock()
	s := c.streams[id]
	c.mu.Unlock()
	return s, nil
}

// resetStream resets stream id (when still open) with code, failing it
// with err.
func (c *Conn) resetStream(id uint32, code http2.ErrCode, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.streams[id]
	if s == nil {
		return
	}
	c.resetLocked(s, code, err)
}

// resetLocked fails s with err and sends RST_STREAM; c.mu is held. The
// stream stays in c.streams until its caller closes it (its DATA left
// unread is then returned to the connection's window).
func (c *Conn) resetLocked(s *stream, code http2.ErrCode, err error) {
	if s.err == nil {
		s.err = err
	}
	if !s.resetSent {
		s.resetSent = true
		c.queueLocked(ctrlFrame{kind: ctrlReset, id: s.id, val: uint32(code)})
	}
	s.signal()
	s.signalSend()
}

func (c *Conn) onHeaders(f *http2.MetaHeadersFrame) error {
	s, err := c.stream(f.StreamID)
	if s == nil {
		return err // a closed stream's block was decoded, keeping hpack in step
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s.touchLocked()
	if err := c.headersLocked(s, f); err != nil {
		c.resetLocked(s, http2.ErrCodeProtocol, err)
	}
	s.signal()
	return nil
}

// headersLocked applies a response head or trailer block to s; c.mu is
// held. Its error is a malformed response.
func (c *Conn) headersLocked(s *stream, f *http2.MetaHeadersFrame) error {
	id := s.id
	switch {
	case s.err != nil:
		return nil // already failed; the reset is on its way
	case s.ended:
		return malformed(id, "HEADERS after the end of the stream")
	case f.Truncated:
		return malformed(id, "header list larger than %d bytes", c.o.MaxHeaderListSize)
	}
	fields := f.RegularFields()
	for _, hf := range fields {
		if connectionSpecific(hf.Name) || hf.Name == "te" {
			return malformed(id, "connection-specific field %q", hf.Name)
		}
	}
	if s.status != 0 { // trailers
		if !f.StreamEnded() {
			return malformed(id, "a second header block that does not end the stream")
		}
		if len(f.PseudoFields()) > 0 {
			return malformed(id, "pseudo-header field in trailers")
		}
		s.trailer = toHeader(fields)
		return c.endLocked(s)
	}
	pseudo := f.PseudoFields()
	if len(pseudo) != 1 || pseudo[0].Name != ":status" {
		return malformed(id, "a response head needs exactly the :status pseudo-header field")
	}
	v := pseudo[0].Value
	status, err := strconv.Atoi(v)
	if len(v) != 3 || err != nil || status < 100 || status > 599 {
		return malformed(id, ":status %q", v)
	}
	if status < 200 {
		if status == http.StatusSwitchingProtocols || f.StreamEnded() {
			return malformed(id, "status %d", status)
		}
		return nil // informational: the final head follows
	}
	h := toHeader(fields)
	if cl, ok := h["Content-Length"]; ok {
		n, err := strconv.ParseInt(cl[0], 10, 64)
		if len(cl) != 1 || err != nil || n < 0 {
			return malformed(id, "content-length %q", cl)
		}
		s.declared = n
	}
	s.status, s.header = status, h
	if f.StreamEnded() {
		return c.endLocked(s)
	}
	return nil
}

// toHeader makes a header from decoded fields, their values sharing one
// backing array (a field seen again gets a slice of its own).
func toHeader(fields []hpack.HeaderField) http.Header {
	h := make(http.Header, len(fields))
	vals := make([]string, len(fields))
	for i, hf := range fields {
		k := textproto.CanonicalMIMEHeaderKey(hf.Name)
		if vs, ok := h[k]; ok {
			h[k] = append(vs, hf.Value)
			continue
		}
		vals[i] = hf.Value
		h[k] = vals[i : i+1 : i+1]
	}
	return h
}

// endLocked marks the member's side of s ended, checking the length it
// declared (not for HEAD, 204 and 304, whose Content-Length describes a
// body not sent); c.mu is held.
func (c *Conn) endLocked(s *stream) error {
	s.ended = true
	if s.declared >= 0 && s.received != s.declared && !s.isHead && s.status != http.StatusNotModified && s.status != http.StatusNoContent {
		return malformed(s.id, "%d bytes of DATA for a content-length of %d", s.received, s.declared)
	}
	return nil
}

func (c *Conn) onData(f *http2.DataFrame) error {
	s, err := c.stream(f.StreamID)
	if err != nil {
		return err
	}
	n := int32(f.Length)
	data := f.Data()
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > c.recvWindow {
		return connError{http2.ErrCodeFlowControl, "DATA beyond the connection's window"}
	}
	c.recvWindow -= n
	if s == nil || s.err != nil || s.gone {
		c.recvUnacked += n // nobody will read it
		c.ackConnLocked()
		return nil
	}
	c.recvUnacked += n - int32(len(data)) // padding
	switch {
	case n > s.recvWindow:
		c.recvUnacked += int32(len(data))
		c.resetLocked(s, http2.ErrCodeFlowControl, malformed(s.id, "DATA beyond the stream's window"))
	case s.status == 0:
		c.recvUnacked += int32(len(data))
		c.resetLocked(s, http2.ErrCodeProtocol, malformed(s.id, "DATA before the response head"))
	case s.ended:
		c.recvUnacked += int32(len(data))
		c.resetLocked(s, http2.ErrCodeStreamClosed, malformed(s.id, "DATA after the end of the stream"))
	default:
		s.touchLocked()
		s.recvWindow -= n
		s.unacked += n - int32(len(data))
		s.received += int64(len(data))
		if s.declared >= 0 && s.received > s.declared {
			c.recvUnacked += int32(len(data))
			c.resetLocked(s, http2.ErrCodeProtocol, malformed(s.id, "more DATA than its content-length of %d", s.declared))
			break
		}
		s.data = append(s.data, data...)
		if f.StreamEnded() {
			if err := c.endLocked(s); err != nil {
				c.resetLocked(s, http2.ErrCodeProtocol, err)
			}
		}
		s.signal()
	}
	c.ackConnLocked()
	return nil
}

func (c *Conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	inc := int32(f.Increment) // at most 2^31-1, checked by the Framer
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID == 0 {
		if c.sendWindow > maxStreamID-inc {
			return connError{http2.ErrCodeFlowControl, "WINDOW_UPDATE beyond 2^31-1"}
		}
		c.sendWindow += inc
		for _, s := range c.streams {
			s.signalSend()
		}
		return nil
	}
	if f.StreamID > c.opened.Load() {
		return connError{http2.ErrCodeProtocol, fmt.Sprintf("WINDOW_UPDATE on stream %d, which was never opened", f.StreamID)}
	}
	s := c.streams[f.StreamID]
	if s == nil {
		return nil
	}
	if s.sendWindow > maxStreamID-inc {
		c.resetLocked(s, http2.ErrCodeFlowControl, malformed(s.id, "WINDOW_UPDATE beyond 2^31-1"))
		return nil
	}
	s.sendWindow += inc
	s.signalSend()
	return nil
}

func (c *Conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	err := f.ForeachSetting(func(st http2.Setting) error {
		if err := st.Valid(); err != nil {
			return connError{http2.ErrCodeProtocol, err.Error()}
		}
		switch st.ID {
		case http2.SettingMaxConcurrentStreams:
			c.maxStreams = st.Val
		case http2.SettingInitialWindowSize:
			delta := int32(st.Val) - c.peerWindow
			for _, s := range c.streams {
				if int64(s.sendWindow)+int64(delta) > maxStreamID {
					return connError{http2.ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream's window"}
				}
				s.sendWindow += delta
				s.signalSend()
			}
			c.peerWindow = int32(st.Val)
		case http2.SettingMaxFrameSize:
			c.maxFrame = st.Val
		case http2.SettingMaxHeaderListSize:
			c.peerMaxList = st.Val
		case http2.SettingHeaderTableSize:
			c.tableSize = int64(st.Val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.queueLocked(ctrlFrame{kind: ctrlSettingsAck})
	return nil
}

func (c *Conn) onPing(f *http2.PingFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.IsAck() {
		c.pingSent = time.Time{}
		return
	}
	c.queueLocked(ctrlFrame{kind: ctrlPingAck, data: f.Data})
}

func (c *Conn) onReset(f *http2.RSTStreamFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.streams[f.StreamID]
	if s == nil {
		return
	}
	s.resetSent = true // nothing more may be sent on it
	if s.ended {
		// A complete response, then a reset that only stops the rest of
		// the request (RFC 9113 section 8.1: NO_ERROR, or a gRPC
		// server's CANCEL after its status): the response stands.
		s.signalSend()
		return
	}
	var err error = StreamError{f.ErrCode}
	if f.ErrCode == http2.ErrCodeRefusedStream {
		err = fmt.Errorf("%w: %w", ErrUnprocessed, err)
	}
	if s.err == nil {
		s.err = err
	}
	s.signal()
	s.signalSend()
}

// onGoAway stops new streams; those above the member's last stream ID
// were not processed and fail so that they can be sent again.
func (c *Conn) onGoAway(f *http2.GoAwayFrame) {
	c.mu.Lock()
	c.goAway = true
	for id, s := range c.streams {
		if id > f.LastStreamID {
			s.failLocked(fmt.Errorf("%w: GOAWAY (%s) before stream %d", ErrUnprocessed, f.ErrCode, id))
			delete(c.streams, id)
		}
	}
	idle := c.active == 0
	c.mu.Unlock()
	if idle {
		c.fail(errClosed)
	}
}
