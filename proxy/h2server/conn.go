package h2server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/terminator-proxy/terminator/proxy/sockio"
)

// Window sizes terminator advertises: a request body is buffered up to
// these before the client must wait for the handler to read.
const (
	streamWindow = 256 << 10
	connWindow   = 1 << 20
	// maxReadFrame is SETTINGS_MAX_FRAME_SIZE: the protocol's default.
	maxReadFrame = 16 << 10
	// maxControlQueue bounds the answers (ACKs, resets, window updates)
	// waiting for a client that does not read them.
	maxControlQueue = 1000
	// prefaceTimeout bounds the wait for the client preface and first
	// SETTINGS when Options.IdleTimeout is longer or unset.
	prefaceTimeout = 10 * time.Second
)

// Options configure a Conn. Zero values take the defaults documented on
// each field.
type Options struct {
	// Handler serves every request, each in its own goroutine.
	Handler http.Handler
	// Context is the parent of every request's context (nil: Background).
	Context context.Context
	// MaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS (250).
	MaxConcurrentStreams uint32
	// MaxHeaderBytes bounds a decoded header list (64 KiB), as
	// SETTINGS_MAX_HEADER_LIST_SIZE; larger requests get 431.
	MaxHeaderBytes int
	// IdleTimeout closes a connection without open streams after this
	// long (GOAWAY first) and bounds each write to the client. Zero: no
	// idle limit, 30 s per write.
	IdleTimeout time.Duration
	// Logger gets one debug line per connection error (slog.Default).
	Logger *slog.Logger
	// WaitIdle, if set, is called by the read loop when no stream is
	// open and every byte received has been read out of the server's
	// own buffer; the loop has given its read buffer back. It returns
	// once the client has sent something (or with the read error: a
	// timeout, a close). The caller knows whether a layer below (TLS)
	// may still hold bytes and then returns at once. An idle HTTP/2
	// connection then holds no read buffer, as an idle HTTP/1.x one.
	WaitIdle func() error
}

// Conn is one HTTP/2 connection being served. Serve runs it; Shutdown and
// Close may be called from any goroutine.
type Conn struct {
	o        Options
	nc       net.Conn
	ctx      context.Context // parent of stream contexts; cancelled when Serve returns
	cancel   context.CancelFunc
	remote   string
	tlsState *tls.ConnectionState
	br       *bufio.Reader      // borrowed from readers; nil while idle
	src      sockio.FillTracker // what br reads from
	// frameStart is set by the read loop before each frame; pokeMu
	// guards blocked (the loop waits for a frame's first bytes) and
	// poked (poke interrupted that wait).
	frameStart bool
	pokeMu     sync.Mutex
	blocked    bool
	poked      bool
	fr         *http2.Framer // read by the read loop, written under wmu
	hdec       *hpack.Decoder
	blk        headerBlock // the header block being read
	budget     floodBudget // read loop only

	// The write side: bw, henc, hbuf, needFlush and wdlSet are guarded
	// by wmu. waiting counts goroutines queued for wmu, so an unlocker
	// can leave the flush to the last writer.
	wmu       sync.Mutex
	waiting   atomic.Int32
	bw        *bufio.Writer
	henc      *hpack.Encoder
	hbuf      headerBuf
	needFlush bool
	wdlSet    time.Time
	tableUsed uint32        // the encoder's dynamic table limit in force
	tableSize atomic.Uint32 // the client's SETTINGS_HEADER_TABLE_SIZE
	writeErr  atomic.Pointer[error]

	// ctrlPending says ctrl holds frames; set and cleared with mu held.
	ctrlPending atomic.Bool

	mu          sync.Mutex
	sendCond    sync.Cond // send-window waiters; L is &mu
	streams     map[uint32]*stream
	maxClientID uint32 // highest stream ID the client opened
	handlers    int    // handlers running, reset streams' included
	idleWorkers int    // workers parked on work
	sendWindow  int64  // what terminator may still send on the connection
	initWindow  int64  // the client's SETTINGS_INITIAL_WINDOW_SIZE
	maxFrame    int    // the client's SETTINGS_MAX_FRAME_SIZE
	recvWindow  int64  // what the client may still send on the connection
	recvUnacked int64  // connection credit consumed but not yet returned
	ctrl        []ctrlFrame
	ctrlSpare   []ctrlFrame
	goingAway   bool
	closed      bool
	resetIDs    [recentResets]uint32
	resetNext   int
	opened      int // streams opened, for rapid-reset accounting
	resets      int // streams the client reset while their handler ran
	handlersWG  sync.WaitGroup
	// work hands a new stream to a parked worker goroutine; busy counts
	// the handlers running, for the write side's flush decision.
	work chan streamJob
	busy atomic.Int32
}

// NewConn prepares c to be served as HTTP/2 after the preface. It takes
// ownership of c.
func NewConn(c net.Conn, o Options) *Conn {
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = 250
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Context == nil {
		o.Context = context.Background()
	}
	sc := &Conn{o: o, nc: c, remote: c.RemoteAddr().String(), streams: map[uint32]*stream{},
		sendWindow: 65535, initWindow: 65535, maxFrame: maxReadFrame, recvWindow: connWindow}
	sc.sendCond.L = &sc.mu
	sc.work = make(chan streamJob)
	sc.ctx, sc.cancel = context.WithCancel(o.Context)
	if tc, ok := c.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		sc.tlsState = &cs
	}
	sc.src.R = c
	sc.fr = http2.NewFramer(connWriter{sc}, connReader{sc})
	sc.fr.SetMaxReadFrameSize(maxReadFrame)
	sc.hdec = hpack.NewDecoder(4096, sc.blk.emit)
	// One field may exceed the list limit by a few times and still be
	// answered 431; beyond that the block is a connection error.
	sc.hdec.SetMaxStringLength(4 * o.MaxHeaderBytes)
	sc.blk.max = o.MaxHeaderBytes
	sc.henc = hpack.NewEncoder(&sc.hbuf)
	sc.tableUsed = 4096
	sc.tableSize.Store(4096)
	sc.budget.init()
	return sc
}

// Upgrade is a request that arrived over HTTP/1.1 with Upgrade: h2c; it
// becomes stream 1 (RFC 7540 §3.2), Settings being its decoded
// HTTP2-Settings header.
type Upgrade struct {
	Request  *http.Request
	Settings []byte
}

// connError is a connection error: GOAWAY with code, then close.
type connError struct {
	code   http2.ErrCode
	reason string
}

func (e connError) Error() string { return fmt.Sprintf("http2: %v: %s", e.code, e.reason) }

// Serve reads the client preface and serves the connection until it ends,
// then waits for every handler to return. up, when not nil, is the
// request that upgraded the connection.
func (c *Conn) Serve(up *Upgrade) {
	defer c.finish()
	c.queueSettings()
	c.kick()
	_ = c.nc.SetReadDeadline(time.Now().Add(c.prefaceWait()))
	if err := c.readPreface(); err != nil {
		c.o.Logger.Debug("HTTP/2 preface refused", "client", c.remote, "err", err)
		if ce, ok := err.(connError); ok {
			c.goAwayNow(ce.code)
		}
		return
	}
	if up != nil {
		if err := c.startUpgraded(up); err != nil {
			c.goAwayNow(err.(connError).code)
			return
		}
	} else {
		c.setIdleDeadline()
	}
	for {
		if c.o.WaitIdle != nil && c.idle() {
			c.releaseReader()
			if err := c.o.WaitIdle(); err != nil {
				c.readFailed(err)
				return
			}
		}
		c.frameStart = true
		f, err := c.fr.ReadFrame()
		if errors.Is(err, errPoked) {
			continue // the last stream ended: wait idle
		}
		if err == nil {
			err = c.process(f)
		}
		if err == nil {
			continue
		}
		var se http2.StreamError
		if errors.As(err, &se) {
			c.streamError(se.StreamID, se.Code)
			continue
		}
		c.readFailed(err)
		return
	}
}

func (c *Conn) prefaceWait() time.Duration {
	if t := c.o.IdleTimeout; t > 0 && t < prefaceTimeout {
		return t
	}
	return prefaceTimeout
}

// readPreface reads the connection preface and the client's first frame,
// which must be SETTINGS (RFC 9113 §3.4).
func (c *Conn) readPreface() error {
	buf := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(connReader{c}, buf); err != nil {
		return err
	}
	if string(buf) != http2.ClientPreface {
		return connError{http2.ErrCodeProtocol, "bad client preface"}
	}
	f, err := c.fr.ReadFrame()
	if err != nil {
		return err
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		return connError{http2.ErrCodeProtocol, "first frame is not SETTINGS"}
	}
	return c.processSettings(sf)
}

// readFailed ends the read loop: a connection error gets its GOAWAY, an
// idle timeout a graceful one.
func (c *Conn) readFailed(err error) {
	var ce connError
	var code http2.ConnectionError
	switch {
	case errors.As(err, &ce):
		c.o.Logger.Debug("HTTP/2 connection error", "client", c.remote, "err", err)
		c.goAwayNow(ce.code)
	case errors.As(err, &code):
		c.o.Logger.Debug("HTTP/2 connection error", "client", c.remote, "err", err, "detail", c.fr.ErrorDetail())
		c.goAwayNow(http2.ErrCode(code))
	case errors.Is(err, http2.ErrFrameTooLarge):
		c.goAwayNow(http2.ErrCodeFrameSize)
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.mu.Lock()
		idle := len(c.streams) == 0 && !c.closed && !c.goingAway
		c.mu.Unlock()
		if idle {
			c.goAwayNow(http2.ErrCodeNo)
		}
	}
}

// finish closes the connection, fails what is still open and waits for
// the handlers.
func (c *Conn) finish() {
	c.mu.Lock()
	c.closed = true
	for _, s := range c.streams {
		s.closeLocked(errClientGone)
	}
	clear(c.streams)
	c.sendCond.Broadcast()
	c.mu.Unlock()
	c.cancel()
	// What is still buffered (a GOAWAY, a last answer) goes out first.
	c.lockWrite() // writes what is queued
	if c.bw.Buffered() > 0 {
		if err := c.bw.Flush(); err != nil {
			c.failWrite(err)
		}
	}
	c.wmu.Unlock()
	c.lingerClose()
	c.handlersWG.Wait()
	c.wmu.Lock()
	c.releaseWriter()
	c.wmu.Unlock()
	c.releaseReader()
}

// Shutdown starts a graceful close: GOAWAY naming the last stream taken,
// no new streams, and the connection closed once the open ones are done.
// It does not wait; Serve returns when the connection is closed.
func (c *Conn) Shutdown() {
	c.mu.Lock()
	if c.goingAway || c.closed {
		c.mu.Unlock()
		return
	}
	c.goingAway = true
	c.queueLocked(ctrlFrame{kind: ctrlGoAway, id: c.maxClientID, val: uint32(http2.ErrCodeNo)})
	done := len(c.streams) == 0
	c.mu.Unlock()
	c.kick()
	if done {
		c.closeRead()
	}
}

// lingerClose ends the write side, then reads and drops what the client
// still sends (at most 256 KiB for one second) before closing: closing
// with unread data makes the kernel send a reset, which can destroy the
// GOAWAY before the client reads it.
func (c *Conn) lingerClose() {
	defer c.nc.Close()
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || c.writeError() != nil || cw.CloseWrite() != nil {
		return
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.nc, 256<<10))
}

// Close cuts the connection at once.
func (c *Conn) Close() { _ = c.nc.Close() }

// closeRead makes the read loop end soon after a GOAWAY: the client gets
// a moment to see it and close first.
func (c *Conn) closeRead() {
	_ = c.nc.SetReadDeadline(time.Now().Add(time.Second))
}

// goAwayNow writes GOAWAY with code and flushes it, before the read loop
// closes the connection.
func (c *Conn) goAwayNow(code http2.ErrCode) {
	c.mu.Lock()
	c.goingAway = true
	last := c.maxClientID
	c.mu.Unlock()
	c.lockWrite() // writes what is queued first
	_ = c.fr.WriteGoAway(last, code, nil)
	// Flushed here, whoever waits: the connection closes next.
	if err := c.bw.Flush(); err != nil {
		c.failWrite(err)
	}
	c.unlockWrite()
}

// setIdleDeadline arms the idle timeout; mu must not be held by others
// changing the stream count meanwhile (callers hold it or own the loop).
func (c *Conn) setIdleDeadline() {
	if t := c.o.IdleTimeout; t > 0 {
		_ = c.nc.SetReadDeadline(time.Now().Add(t))
	} else {
		_ = c.nc.SetReadDeadline(time.Time{})
	}
}

var errClientGone = errors.New("h2server: client closed the stream")
