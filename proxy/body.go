package proxy

import (
	"bufio"
	"io"
	"net/http"
	"sync"
	"time"
)

// clientBody is a request body that enforces the client inactivity timeout
// while it is read.
type clientBody struct {
	io.ReadCloser
	rc *http.ResponseController
	dl deadline
	n  int64
}

func (b *clientBody) Read(p []byte) (int, error) {
	if now := time.Now(); b.dl.due(now) {
		_ = b.rc.SetReadDeadline(now.Add(b.dl.timeout)) // unsupported writers keep the server's limits
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// recorder captures the status and size of a response and enforces the
// client inactivity timeout while it is written. Unwrap lets
// http.ResponseController reach Flush and Hijack underneath.
type recorder struct {
	http.ResponseWriter
	rc     *http.ResponseController
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
	if now := time.Now(); w.dl.due(now) {
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
