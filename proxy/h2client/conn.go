package h2client

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Options configure a Conn. The zero value gives the defaults.
type Options struct {
	// MaxHeaderListSize bounds a response head or trailer block, decoded
	// (RFC 9113 section 6.5.2's measure); default 1 MiB.
	MaxHeaderListSize uint32
	// PingAfter is how long a connection may go without a frame from the
	// member before it is pinged (default 30 s); PingTimeout how long the
	// answer may take before the connection is closed (default 15 s).
	PingAfter, PingTimeout time.Duration
	// IdleTimeout closes a connection without streams (default 90 s).
	IdleTimeout time.Duration
}

const (
	streamWindow = 256 << 10 // receive window per stream
	connWindow   = 1 << 20   // receive window per connection
	// maxReadFrame is the largest frame accepted (SETTINGS_MAX_FRAME_SIZE
	// is left at its default: DATA beyond it is the member's error).
	maxReadFrame = 16 << 10
	// initialMaxStreams is assumed until the member's SETTINGS say
	// otherwise (RFC 9113 leaves it unlimited; 100 is what it recommends
	// as the least a server should allow).
	initialMaxStreams = 100
	maxStreamID       = 1<<31 - 1
	maxControlQueue   = 1024
)

// ErrUnprocessed wraps the errors of requests the member has not
// processed (beyond its GOAWAY's last stream, or refused with
// REFUSED_STREAM): they may be sent again, on another connection.
var ErrUnprocessed = errors.New("the member did not process the request")

var errClosed = errors.New("HTTP/2 connection to the member closed")

// Conn is one HTTP/2 connection to a member. It is safe for concurrent
// use; Close ends it and its read loop.
type Conn struct {
	nc net.Conn
	o  Options

	// Write side, guarded by wmu: the framer's writes, the hpack encoder
	// (whose state must follow the order frames are written in) and the
	// allocation of stream IDs (sent in increasing order).
	wmu    sync.Mutex
	bw     *bufio.Writer
	fr     *http2.Framer
	enc    *hpack.Encoder
	hbuf   headerBuffer
	nextID uint32
	wdlSet time.Time // when the write deadline was last moved

	mu          sync.Mutex // guards the fields below
	streams     map[uint32]*stream
	active      int // streams open or reserved
	maxStreams  uint32
	peerWindow  int32 // SETTINGS_INITIAL_WINDOW_SIZE: a new stream's send window
	sendWindow  int32 // connection-level send window
	recvWindow  int32 // connection-level receive window left
	recvUnacked int32 // consumed, not yet returned with WINDOW_UPDATE
	maxFrame    uint32
	peerMaxList uint32 // SETTINGS_MAX_HEADER_LIST_SIZE, 0: unlimited
	tableSize   int64  // SETTINGS_HEADER_TABLE_SIZE not yet applied to enc; -1: none
	goAway      bool   // no new streams: GOAWAY received or sent, or IDs used up
	err         error  // why the connection ended; set once
	ctrl        []ctrlFrame
	idleSince   time.Time
	pingSent    time.Time // zero: no ping outstanding

	ctrlPending atomic.Bool
	opened      atomic.Uint32 // the highest stream ID used
	lastRead    atomic.Int64  // unix nanos of the last frame read
	timer       *time.Timer   // liveness and idleness checks
	done        chan struct{}
	closeOnce   sync.Once
	readDone    chan struct{}
}

// New starts HTTP/2 on nc, a connection that already speaks it (TLS with
// ALPN "h2", or prior knowledge): it writes the preface and SETTINGS and
// starts the read loop. The Conn owns nc from now on.
func New(nc net.Conn, o Options) (*Conn, error) {
	if o.MaxHeaderListSize == 0 {
		o.MaxHeaderListSize = 1 << 20
	}
	if o.PingAfter <= 0 {
		o.PingAfter = 30 * time.Second
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = 15 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 90 * time.Second
	}
	c := &Conn{
		nc: nc, o: o, nextID: 1,
		streams:    map[uint32]*stream{},
		maxStreams: initialMaxStreams,
		peerWindow: 65535, sendWindow: 65535, recvWindow: connWindow,
		maxFrame: 16 << 10, tableSize: -1,
		idleSince: time.Now(),
		done:      make(chan struct{}),
		readDone:  make(chan struct{}),
	}
	c.bw = bufio.NewWriterSize(nc, 16<<10)
	c.fr = http2.NewFramer(c.bw, bufio.NewReaderSize(nc, 16<<10))
	c.fr.SetMaxReadFrameSize(maxReadFrame)
	c.fr.MaxHeaderListSize = o.MaxHeaderListSize
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.ReadMetaHeaders.SetMaxStringLength(int(o.MaxHeaderListSize))
	c.enc = hpack.NewEncoder(&c.hbuf)

	c.wmu.Lock()
	_, _ = c.bw.WriteString(http2.ClientPreface)
	_ = c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: streamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: o.MaxHeaderListSize},
	)
	_ = c.fr.WriteWindowUpdate(0, connWindow-65535)
	err := c.bw.Flush()
	c.wmu.Unlock()
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("starting HTTP/2 with the member: %w", err)
	}
	c.lastRead.Store(time.Now().UnixNano())
	c.timer = time.AfterFunc(c.checkEvery(), c.check)
	go c.readLoop()
	return c, nil
}

// Reserve takes a stream slot for a request, reporting false when the
// connection takes no new streams (closing, going away, at the member's
// SETTINGS_MAX_CONCURRENT_STREAMS). A reservation is used by RoundTrip.
func (c *Conn) Reserve() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.goAway || c.active >= int(c.maxStreams) {
		return false
	}
	c.active++
	return true
}

// Unusable reports whether the connection takes no new streams ever
// again (ended, or going away).
func (c *Conn) Unusable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil || c.goAway
}

// Close ends the connection at once: every stream fails.
func (c *Conn) Close() error {
	c.fail(errClosed)
	<-c.readDone
	return nil
}

// Shutdown stops new streams and closes the connection once the open ones
// are done (or at once when there are none).
func (c *Conn) Shutdown() {
	c.mu.Lock()
	c.goAway = true
	idle := c.active == 0
	c.mu.Unlock()
	if idle {
		c.fail(errClosed)
	}
}

// fail ends the connection with err (the first cause is kept): streams
// are woken with it and the socket is closed, which ends the read loop.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
		c.goAway = true
	}
	for id, s := range c.streams {
		s.failLocked(c.err)
		delete(c.streams, id)
	}
	c.mu.Unlock()
	c.closeOnce.Do(func() {
		close(c.done)
		c.timer.Stop()
		_ = c.nc.Close()
	})
}

// release gives back a stream slot (the stream is already out of
// c.streams). A connection going away closes with its last stream.
func (c *Conn) release() {
	c.mu.Lock()
	c.active--
	last := c.active == 0
	if last {
		c.idleSince = time.Now()
	}
	drained := last && c.goAway
	c.mu.Unlock()
	if drained {
		c.fail(errClosed)
	}
}

func (c *Conn) checkEvery() time.Duration {
	return min(c.o.PingAfter, c.o.PingTimeout, c.o.IdleTimeout) / 2
}

// check runs on the connection's timer: it closes an idle connection,
// pings a silent one and closes one whose ping went unanswered.
func (c *Conn) check() {
	now := time.Now()
	silent := now.Sub(time.Unix(0, c.lastRead.Load()))
	c.mu.Lock()
	var idle, ping, dead bool
	switch {
	case c.err != nil:
		c.mu.Unlock()
		return
	case c.active == 0 && now.Sub(c.idleSince) >= c.o.IdleTimeout:
		idle = true
		c.err, c.goAway = errClosed, true // before Reserve can take it again
	case !c.pingSent.IsZero():
		dead = now.Sub(c.pingSent) >= c.o.PingTimeout
	case silent >= c.o.PingAfter:
		ping = true
		c.pingSent = now
		c.queueLocked(ctrlFrame{kind: ctrlPing})
	}
	c.mu.Unlock()
	switch {
	case idle:
		c.fail(errClosed)
		return
	case dead:
		c.fail(fmt.Errorf("the member did not answer a PING within %s", c.o.PingTimeout))
		return
	case ping:
		c.kick()
	}
	c.timer.Reset(c.checkEvery())
}
