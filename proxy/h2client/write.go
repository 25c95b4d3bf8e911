package h2client

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The write side. Requests write their own frames while holding wmu; the
// read loop and the timer never wait for it: they queue control frames in
// ctrl, written by the next holder of wmu or by kick when it is free.

type ctrlKind uint8

const (
	ctrlSettingsAck ctrlKind = iota
	ctrlPing
	ctrlPingAck
	ctrlWindow
	ctrlReset
)

// ctrlFrame is a queued frame: val is the window increment or the error
// code.
type ctrlFrame struct {
	kind ctrlKind
	id   uint32
	val  uint32
	data [8]byte
}

// queueLocked queues f; mu is held. A member whose answers pile up past
// maxControlQueue is cut off by the read loop.
func (c *Conn) queueLocked(f ctrlFrame) {
	c.ctrl = append(c.ctrl, f)
	c.ctrlPending.Store(true)
}

// kick writes queued control frames unless someone holds the write lock
// (who writes them before letting go).
func (c *Conn) kick() {
	for c.ctrlPending.Load() && c.wmu.TryLock() {
		c.armWrite()
		c.unlockWrite()
	}
}

// lockWrite takes the write lock and bounds the coming writes in time.
func (c *Conn) lockWrite() {
	c.wmu.Lock()
	c.armWrite()
	c.writeControl()
}

// armWrite keeps the write deadline at least three quarters of
// PingAfter+PingTimeout away (re-arming it at most every quarter): a
// member that stops reading cannot hold a writer forever. wmu is held.
func (c *Conn) armWrite() {
	d := c.o.PingAfter + c.o.PingTimeout
	if now := time.Now(); now.Sub(c.wdlSet) > d/4 {
		_ = c.nc.SetWriteDeadline(now.Add(d))
		c.wdlSet = now
	}
}

// unlockWrite writes queued control frames, flushes and lets go. A
// failed write ends the connection.
func (c *Conn) unlockWrite() {
	c.writeControl()
	err := c.bw.Flush()
	c.wmu.Unlock()
	if err != nil {
		c.fail(fmt.Errorf("writing to the member: %w", err))
		return
	}
	if c.ctrlPending.Load() {
		c.kick()
	}
}

// writeControl writes the queued control frames; wmu is held.
func (c *Conn) writeControl() {
	if !c.ctrlPending.Load() {
		return
	}
	c.mu.Lock()
	q := c.ctrl
	c.ctrl = nil
	c.ctrlPending.Store(false)
	c.mu.Unlock()
	for _, f := range q {
		switch f.kind {
		case ctrlSettingsAck:
			_ = c.fr.WriteSettingsAck()
		case ctrlPing:
			_ = c.fr.WritePing(false, f.data)
		case ctrlPingAck:
			_ = c.fr.WritePing(true, f.data)
		case ctrlWindow:
			_ = c.fr.WriteWindowUpdate(f.id, f.val)
		case ctrlReset:
			_ = c.fr.WriteRSTStream(f.id, http2.ErrCode(f.val))
		}
	}
}

// headerBuffer collects one encoded header block.
type headerBuffer struct{ b []byte }

func (h *headerBuffer) Write(p []byte) (int, error) {
	h.b = append(h.b, p...)
	return len(p), nil
}

// connectionSpecific are the fields HTTP/2 forbids (RFC 9113 section
// 8.2.2); TE is allowed with "trailers" only.
func connectionSpecific(name string) bool {
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host":
		return true
	}
	return false
}

// encodeHead encodes r's head into c.hbuf; wmu is held. Names are sent
// in lower case; connection-specific fields are left out. A field HTTP/2
// cannot carry, or a head beyond the member's SETTINGS_MAX_HEADER_LIST_SIZE
// (limit, 0: none), is an error found before anything is encoded, so the
// encoder's table stays in step with the member's.
func (c *Conn) encodeHead(r *Request, limit uint32) error {
	size := uint64(len(r.Method) + len(r.Scheme) + len(r.Authority) + len(r.Path) + 4*32)
	for k, vs := range r.Header {
		name := lowerName(k)
		if skipField(name) {
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("request header field %q cannot be sent over HTTP/2", k)
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("request header field %q has a value HTTP/2 cannot carry", k)
			}
			size += uint64(len(name) + len(v) + 32)
		}
	}
	if limit != 0 && size > uint64(limit) {
		return fmt.Errorf("request head of %d bytes exceeds the member's limit of %d", size, limit)
	}
	c.hbuf.b = c.hbuf.b[:0]
	c.field(":method", r.Method)
	c.field(":scheme", r.Scheme)
	c.field(":authority", r.Authority)
	c.field(":path", r.Path)
	for k, vs := range r.Header {
		name := lowerName(k)
		if skipField(name) {
			continue
		}
		for _, v := range vs {
			if name != "te" || v == "trailers" {
				c.field(name, v)
			}
		}
	}
	if r.ContentLength > 0 {
		c.field("content-length", strconv.FormatInt(r.ContentLength, 10))
	}
	return nil
}

func (c *Conn) field(name, value string) {
	_ = c.enc.WriteField(hpack.HeaderField{Name: name, Value: value})
}

// skipField reports the fields a request never carries as they are:
// connection-specific ones and the framing (Content-Length is set from
// the request's length).
func skipField(name string) bool {
	return connectionSpecific(name) || name == "content-length"
}

// lowerName is k in lower case, without allocating for names already so
// or for the common canonical ones.
func lowerName(k string) string {
	for i := 0; i < len(k); i++ {
		if c := k[i]; 'A' <= c && c <= 'Z' {
			if v, ok := commonLower[k]; ok {
				return v
			}
			return strings.ToLower(k)
		}
	}
	return k
}

var commonLower = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control", "Content-Type", "Content-Encoding", "Cookie", "Grpc-Timeout", "Grpc-Encoding", "Grpc-Accept-Encoding", "Grpc-Message", "Grpc-Status", "Te", "User-Agent", "X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto", "Origin", "Referer", "If-None-Match", "If-Modified-Since", "Range"} {
		m[k] = strings.ToLower(k)
	}
	return m
}()

// writeBlock writes an encoded header block as HEADERS and CONTINUATION
// frames of at most the member's frame size; wmu is held.
func (c *Conn) writeBlock(id uint32, block []byte, end bool, maxFrame uint32) {
	first := true
	for first || len(block) > 0 {
		n := min(len(block), int(maxFrame))
		frag := block[:n]
		block = block[n:]
		if first {
			_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: end, EndHeaders: len(block) == 0})
			first = false
		} else {
			_ = c.fr.WriteContinuation(id, len(block) == 0, frag)
		}
	}
}

// encodeTrailers encodes trailer fields into c.hbuf; wmu is held. Fields
// not allowed in trailers are left out; a value HTTP/2 cannot carry is an
// error found before anything is encoded.
func (c *Conn) encodeTrailers(tr map[string][]string) error {
	for k, vs := range tr {
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("request trailer field %q has a value HTTP/2 cannot carry", k)
			}
		}
	}
	c.hbuf.b = c.hbuf.b[:0]
	for k, vs := range tr {
		name := lowerName(k)
		if !httpguts.ValidTrailerHeader(k) || connectionSpecific(name) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vs {
			c.field(name, v)
		}
	}
	return nil
}
