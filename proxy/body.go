package proxy

import (
	"io"
	"net/http"
	"time"
)

// clientBody is a request body that enforces the client inactivity timeout
// on each read and counts as progress toward the member's timer (the member
// is busy reading while the client uploads).
type clientBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	x       *exchange
	n       int64
}

func (b *clientBody) Read(p []byte) (int, error) {
	if b.timeout > 0 {
		_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout)) // unsupported writers keep the server's limits
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.n += int64(n)
		b.x.progress()
	}
	return n, err
}

// memberBody is a response body whose reads restart the member timer.
type memberBody struct {
	io.ReadCloser
	x *exchange
}

func (b *memberBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.x.progress()
	}
	return n, err
}

// recorder captures the status and size of a response and enforces the
// client inactivity timeout on each write. Unwrap lets
// http.ResponseController reach Flush and Hijack underneath.
type recorder struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	status  int
	n       int64
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
	if w.timeout > 0 {
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
