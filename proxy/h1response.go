package proxy

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/terminator-proxy/terminator/proxy/httpwire"
)

// h1response is the http.ResponseWriter of the own HTTP/1.x loop. The head
// is written at the first Write or Flush, or when the handler returns: a
// response with a Content-Length header is sent as such, one the handler
// finished without writing a body gets Content-Length: 0, and any other
// is chunked (HTTP/1.1) or ends with the connection (HTTP/1.0).
type h1response struct {
	hc        *h1conn
	req       *http.Request
	body      *h1body
	header    http.Header
	bw        *bufio.Writer // borrowed from writers while the response is written
	status    int
	headSent  bool
	chunked   bool
	closeConn bool  // close after this response
	declared  int64 // Content-Length set by the handler; -1: none
	written   int64
	hijacked  bool
	err       error // sticky write error
}

func newH1Response(hc *h1conn, r *http.Request, body *h1body) *h1response {
	return &h1response{hc: hc, req: r, body: body, header: make(http.Header, 8), declared: -1, closeConn: r.Close}
}

func (w *h1response) Header() http.Header { return w.header }

// WriteHeader records the status. Interim (1xx) statuses are not relayed.
func (w *h1response) WriteHeader(code int) {
	if w.status != 0 || w.hijacked || code < 200 {
		return
	}
	w.status = code
}

func (w *h1response) bodyAllowed() bool {
	return w.req.Method != http.MethodHead && w.status != http.StatusNoContent && w.status != http.StatusNotModified
}

var errBodyTooLong = errors.New("proxy: response body longer than its Content-Length")

func (w *h1response) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !w.headSent {
		w.writeHead(false)
	}
	if !w.bodyAllowed() {
		return len(p), nil // HEAD, 204, 304: the body is dropped
	}
	if w.declared >= 0 && w.written+int64(len(p)) > w.declared {
		return 0, errBodyTooLong
	}
	w.written += int64(len(p))
	var err error
	if w.chunked {
		w.bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		w.bw.WriteString("\r\n")
		w.bw.Write(p)
		_, err = w.bw.WriteString("\r\n")
	} else {
		_, err = w.bw.Write(p)
	}
	if err != nil {
		w.err = err
		return 0, err
	}
	return len(p), nil
}

// Flush sends what is buffered, head included.
func (w *h1response) Flush() {
	if w.hijacked || w.err != nil {
		return
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !w.headSent {
		w.writeHead(false)
	}
	if err := w.bw.Flush(); err != nil {
		w.err = err
	}
}

// FlushError is Flush with its error, for http.ResponseController.
func (w *h1response) FlushError() error {
	w.Flush()
	return w.err
}

func (w *h1response) SetReadDeadline(t time.Time) error  { return w.hc.c.SetReadDeadline(t) }
func (w *h1response) SetWriteDeadline(t time.Time) error { return w.hc.c.SetWriteDeadline(t) }

// Hijack hands the connection over (protocol upgrades). Nothing of the
// response may have been sent.
func (w *h1response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.headSent || w.hijacked {
		return nil, nil, errors.New("proxy: hijack after the response started")
	}
	w.hijacked = true
	_ = w.hc.c.SetDeadline(time.Time{})
	return w.hc.c, bufio.NewReadWriter(w.hc.br, bufio.NewWriter(w.hc.c)), nil
}

// writeHead writes the status line and header. final says the handler
// has returned, so an unset length is known to be what was written.
func (w *h1response) writeHead(final bool) {
	w.headSent = true
	w.bw = writers.Get().(*bufio.Writer)
	w.bw.Reset(w.hc.c)
	w.declared = httpwire.DeclaredLength(w.header)
	framed := w.declared >= 0 || !w.bodyAllowed()
	switch {
	case framed:
	case final:
		w.header["Content-Length"] = []string{"0"}
	case w.req.ProtoMinor == 1:
		w.chunked = true
	default:
		w.closeConn = true // HTTP/1.0 and no length: the close ends it
	}
	bw := w.bw
	bw.WriteString(statusLine(w.status))
	httpwire.WriteFields(bw, httpwire.HeadOnly(w.header))
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case w.closeConn:
		bw.WriteString("Connection: close\r\n")
	case w.req.ProtoMinor == 0:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	bw.WriteString("\r\n")
}

// finish completes the response after the handler returned and gives the
// writer back. It reports whether the connection can carry another request.
func (w *h1response) finish() bool {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !w.headSent {
		w.writeHead(true)
	}
	if w.chunked && w.err == nil {
		w.bw.WriteString("0\r\n")
		if t := httpwire.Trailers(w.header); t != nil {
			httpwire.WriteFields(w.bw, t)
		}
		w.bw.WriteString("\r\n")
	}
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	w.release()
	short := w.declared >= 0 && w.bodyAllowed() && w.written != w.declared
	return w.err == nil && !w.closeConn && !short
}

func (w *h1response) release() {
	if w.bw != nil {
		w.bw.Reset(nil)
		writers.Put(w.bw)
		w.bw = nil
	}
}

// statusLines holds "HTTP/1.1 200 OK\r\n" and friends, built once.
var statusLines = func() []string {
	lines := make([]string, 600)
	for code := range lines {
		if text := http.StatusText(code); text != "" {
			lines[code] = "HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\n"
		}
	}
	return lines
}()

func statusLine(code int) string {
	if code >= 0 && code < len(statusLines) && statusLines[code] != "" {
		return statusLines[code]
	}
	return "HTTP/1.1 " + strconv.Itoa(code) + " \r\n"
}
