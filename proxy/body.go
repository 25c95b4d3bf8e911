package proxy

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/terminator-proxy/terminator/proxy/sockio"
)

// clientBody is a request body that enforces the client inactivity timeout
// while it is read.
type clientBody struct {
	io.ReadCloser
	rc deadlines // the response writer's, nil if it has none
	dl deadline
	n  int64
	// aborted is set by abort, from the goroutine the body's stream
	// belongs to, while another may be reading.
	aborted atomic.Bool
}

// deadlines is what http.ResponseController reaches for on the servers'
// response writers (terminator's HTTP/1 and HTTP/2 writers both have
// it); asserting it directly saves a ResponseController per
// request.
type deadlines interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// deadlinesOf returns w's deadline setters, or nil.
func deadlinesOf(w http.ResponseWriter) deadlines {
	d, _ := w.(deadlines)
	return d
}

func (b *clientBody) Read(p []byte) (int, error) {
	if now := time.Now(); b.rc != nil && b.dl.due(now) {
		_ = b.rc.SetReadDeadline(now.Add(b.dl.timeout)) // unsupported writers keep the server's limits
	}
	if b.aborted.Load() { // after the deadline's re-arm: see abort
		return 0, errBodyAborted
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

var errBodyAborted = errors.New("request body no longer wanted: the member's stream ended")

// abort makes a pending Read return and later ones fail: the member's
// stream ended while the body was still being copied to it. The flag is
// set before the deadline is moved to the past, and Read checks it after
// re-arming the deadline, so a Read cannot re-arm past the abort.
//
// Only HTTP/2 bodies are cut so. An HTTP/1.x body's pending Read is left
// to end with the client's next bytes (or its timeout): the response has
// been flushed by then, and the server drains what follows before it
// closes, which a deadline in the past would cut short — and a close with
// unread bytes is a TCP reset that can destroy the response in flight.
func (b *clientBody) abort() {
	if _, h2 := b.ReadCloser.(interface{ Complete() bool }); !h2 {
		return
	}
	b.aborted.Store(true)
	if b.rc != nil {
		_ = b.rc.SetReadDeadline(time.Now())
	}
}

// complete reports whether the rest of the body is already received, so
// that reading it will not wait for the client (the HTTP/2 server's
// bodies know; others are never complete in advance).
func (b *clientBody) complete() bool {
	c, ok := b.ReadCloser.(interface{ Complete() bool })
	return ok && c.Complete()
}

// recorder captures the status and size of a response and enforces the
// client inactivity timeout while it is written. Unwrap lets
// http.ResponseController reach Flush and Hijack underneath.
type recorder struct {
	http.ResponseWriter
	rc     deadlines // nil if the writer has none
	dl     deadline
	status int
	n      int64
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if now := time.Now(); w.rc != nil && w.dl.due(now) {
		_ = w.rc.SetWriteDeadline(now.Add(w.dl.timeout))
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// outboundBody offers the client's body again to another member after a
// refused connection, when none of it was read. (httputil.ReverseProxy
// gives the transport the body behind a reader that ignores Close, and the
// transport closes that one on error; net/http closes the client's body
// when the handler returns.)
type outboundBody struct{ *clientBody }

func (outboundBody) Close() error { return nil }

// writers are the 4 KiB buffered writers borrowed while a request is
// written to a member or a response to a client.
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}

// deadline is a connection deadline of timeout, re-armed as sockio.Rearm
// allows.
type deadline struct {
	timeout time.Duration
	rearm   sockio.Rearm
}

// due reports whether the deadline should be re-armed now, and records it.
func (d *deadline) due(now time.Time) bool { return d.rearm.Due(now, d.timeout) }
