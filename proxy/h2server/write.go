package h2server

import (
	"bufio"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The write side. Handlers write their own frames while holding wmu; the
// read loop never blocks on the client's socket: it queues its answers
// in ctrl and kick writes them when wmu is free (or leaves them to the
// writer holding it, who writes them before letting go).

type ctrlKind uint8

const (
	ctrlSettings ctrlKind = iota
	ctrlSettingsAck
	ctrlPingAck
	ctrlWindow
	ctrlReset
	ctrlGoAway
	ctrlTooLarge // a 431 answer
)

// ctrlFrame is a queued frame: val is the window increment or the error
// code.
type ctrlFrame struct {
	kind ctrlKind
	id   uint32
	val  uint32
	data [8]byte
}

var errControlFlood = connError{http2.ErrCodeEnhanceYourCalm, "client does not read the answers to its control frames"}

// queueLocked queues f; mu is held. A client whose answers pile up past
// maxControlQueue is cut off by the read loop (see queueFull).
func (c *Conn) queueLocked(f ctrlFrame) {
	c.ctrl = append(c.ctrl, f)
	c.ctrlPending.Store(true)
}

func (c *Conn) queueFull() bool {
	if !c.ctrlPending.Load() {
		return false // the common case, checked per frame without mu
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ctrl) > maxControlQueue
}

func (c *Conn) queue(f ctrlFrame) {
	c.mu.Lock()
	c.queueLocked(f)
	c.mu.Unlock()
}

// kick writes queued control frames if no one holds the write lock; the
// holder writes them otherwise (unlockWrite checks again after letting go).
func (c *Conn) kick() {
	for c.ctrlPending.Load() && c.wmu.TryLock() {
		c.borrowWriter()
		c.needFlush = true
		c.unlockWriteNoKick()
	}
}

// lockWrite takes the write lock, bounding the coming writes by the write
// timeout.
func (c *Conn) lockWrite() {
	c.waiting.Add(1)
	c.wmu.Lock()
	c.waiting.Add(-1)
	c.borrowWriter()
	// Answers queued before this writer got the lock go first: a
	// SETTINGS ACK precedes DATA sent under the new settings.
	c.writeControl()
	t := c.o.IdleTimeout
	if t <= 0 {
		t = 30 * time.Second
	}
	if now := time.Now(); now.Sub(c.wdlSet) > t/4 {
		_ = c.nc.SetWriteDeadline(now.Add(t))
		c.wdlSet = now
	}
}

// unlockWrite writes queued control frames, flushes when a flush is due
// and no other writer is waiting to add to it, and lets go.
func (c *Conn) unlockWrite() {
	c.unlockWriteNoKick()
	c.kick()
}

func (c *Conn) unlockWriteNoKick() {
	c.writeControl()
	if c.needFlush && c.waiting.Load() == 0 && c.busy.Load() > 1 {
		// Other streams are being served: let any of them that is
		// ready to write queue up behind this one, so that one write
		// carries several responses (as an event loop would gather
		// them). They find the lock held and leave the flush to the last.
		runtime.Gosched()
	}
	if c.needFlush && c.waiting.Load() == 0 {
		c.needFlush = false
		if c.bw.Buffered() > 0 {
			if err := c.bw.Flush(); err != nil {
				c.failWrite(err)
			}
		}
		c.releaseWriter()
	}
	c.wmu.Unlock()
}

// writeControl writes the queued control frames; wmu is held.
func (c *Conn) writeControl() {
	if !c.ctrlPending.Load() {
		return
	}
	c.mu.Lock()
	q := c.ctrl
	c.ctrl, c.ctrlSpare = c.ctrlSpare[:0], q
	c.ctrlPending.Store(false)
	maxFrame := c.maxFrame
	c.mu.Unlock()
	for _, f := range q {
		switch f.kind {
		case ctrlSettings:
			_ = c.fr.WriteSettings(
				http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: c.o.MaxConcurrentStreams},
				http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
				http2.Setting{ID: http2.SettingMaxFrameSize, Val: maxReadFrame},
				http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: uint32(c.o.MaxHeaderBytes)},
				http2.Setting{ID: http2.SettingEnablePush, Val: 0},
			)
			_ = c.fr.WriteWindowUpdate(0, connWindow-65535)
		case ctrlSettingsAck:
			_ = c.fr.WriteSettingsAck()
		case ctrlPingAck:
			_ = c.fr.WritePing(true, f.data)
		case ctrlWindow:
			_ = c.fr.WriteWindowUpdate(f.id, f.val)
		case ctrlReset:
			_ = c.fr.WriteRSTStream(f.id, http2.ErrCode(f.val))
		case ctrlGoAway:
			_ = c.fr.WriteGoAway(f.id, http2.ErrCode(f.val), nil)
		case ctrlTooLarge:
			c.writeHeaderBlock(f.id, c.encodeHead(http.StatusRequestHeaderFieldsTooLarge, nil), true, maxFrame)
		}
	}
	c.needFlush = true
}

func (c *Conn) queueSettings() { c.queue(ctrlFrame{kind: ctrlSettings}) }

// writers lend the connections their write buffer while they write.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}

func (c *Conn) borrowWriter() {
	if c.bw == nil {
		c.bw = writers.Get().(*bufio.Writer)
		c.bw.Reset(c.nc)
	}
}

func (c *Conn) releaseWriter() {
	if c.bw != nil && c.bw.Buffered() == 0 {
		c.bw.Reset(nil)
		writers.Put(c.bw)
		c.bw = nil
	}
}

// connWriter is the Framer's writer: the borrowed buffer, or the sticky
// error of a failed write.
type connWriter struct{ c *Conn }

func (w connWriter) Write(p []byte) (int, error) {
	if err := w.c.writeErr.Load(); err != nil {
		return 0, *err
	}
	n, err := w.c.bw.Write(p)
	if err != nil {
		w.c.failWrite(err)
	}
	return n, err
}

// failWrite records the first write error and closes the connection, so
// the read loop ends and every stream fails.
func (c *Conn) failWrite(err error) {
	if c.writeErr.CompareAndSwap(nil, &err) {
		_ = c.nc.Close()
	}
	c.bw.Reset(c.nc) // drop what can no longer be sent
}

// writeHeaderBlock writes block as HEADERS and as many CONTINUATION
// frames as the client's frame size needs; wmu is held.
func (c *Conn) writeHeaderBlock(id uint32, block []byte, end bool, maxFrame int) {
	first := true
	for first || len(block) > 0 {
		frag := block
		if len(frag) > maxFrame {
			frag = frag[:maxFrame]
		}
		block = block[len(frag):]
		if first {
			_ = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: end, EndHeaders: len(block) == 0})
		} else {
			_ = c.fr.WriteContinuation(id, len(block) == 0, frag)
		}
		first = false
	}
}

// headerBuf is the hpack encoder's output, reused for every block.
type headerBuf struct{ b []byte }

func (h *headerBuf) Write(p []byte) (int, error) { h.b = append(h.b, p...); return len(p), nil }

// encodeHead encodes a response head (status > 0) or a trailer block
// (status 0) from h; wmu is held. Connection-specific fields are never
// sent (RFC 9113 §8.2.2), nor invalid names or values.
func (c *Conn) encodeHead(status int, h http.Header) []byte {
	c.hbuf.b = c.hbuf.b[:0]
	if ts := c.tableSize.Load(); ts != c.tableUsed {
		c.tableUsed = ts
		c.henc.SetMaxDynamicTableSizeLimit(ts)
	}
	if status > 0 {
		_ = c.henc.WriteField(hpack.HeaderField{Name: ":status", Value: statusText(status)})
	}
	for k, vs := range h {
		name := lowerName(k)
		switch name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vs {
			if httpguts.ValidHeaderFieldValue(v) {
				_ = c.henc.WriteField(hpack.HeaderField{Name: name, Value: v, Sensitive: name == "set-cookie" || name == "authorization"})
			}
		}
	}
	return c.hbuf.b
}

var statusTexts = func() []string {
	s := make([]string, 600)
	for i := 100; i < len(s); i++ {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func statusText(code int) string {
	if code >= 100 && code < len(statusTexts) {
		return statusTexts[code]
	}
	return strconv.Itoa(code)
}

// commonLower holds the lower-case form of the field names most responses
// carry, so encoding them allocates nothing.
var commonLower = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Accept-Ranges", "Age", "Cache-Control", "Content-Encoding", "Content-Language",
		"Content-Length", "Content-Type", "Date", "Etag", "Expires", "Last-Modified", "Location", "Server",
		"Set-Cookie", "Strict-Transport-Security", "Vary", "Via", "X-Content-Type-Options", "X-Frame-Options",
		"Grpc-Status", "Grpc-Message", "Grpc-Encoding", "Grpc-Accept-Encoding", "Trailer", "X-Request-Id", "Alt-Svc",
		"Access-Control-Allow-Origin", "Content-Security-Policy", "Referrer-Policy", "Link", "Www-Authenticate"} {
		m[k] = strings.ToLower(k)
	}
	return m
}()

func lowerName(k string) string {
	if v, ok := commonLower[k]; ok {
		return v
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(k)
		}
	}
	return k
}
