package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/terminator-proxy/terminator/metrics"
	"github.com/terminator-proxy/terminator/proxy/httpwire"
	"github.com/terminator-proxy/terminator/proxy/sockio"
)

// terminator serves HTTP/1.x itself (HTTP/2: package h2server). The own
// loop reads a request, runs the handler and writes the response in one
// goroutine per connection: no background read per request, no request
// context per request, and the response writer is borrowed from a pool
// only while a response is being written. Parsing is strict (package httpwire).

// maxDrainBytes is how much of an unread request body is read and thrown
// away to keep the connection, as net/http's maxPostHandlerReadBytes.
const maxDrainBytes = 256 << 10

// h1conns tracks a listener's HTTP/1.x connections for Shutdown.
type h1conns struct {
	mu      sync.Mutex // guards conns; closing is set with it held
	conns   map[*h1conn]bool
	closing atomic.Bool    // read without mu on every request
	wg      sync.WaitGroup // one per serving goroutine
}

// h1conn is one client connection served by serveH1.
type h1conn struct {
	l      *Listener
	c      net.Conn
	ci     *connInfo
	br     *bufio.Reader
	ctx    context.Context // request context; cancelled when the connection is cut
	cancel context.CancelFunc
	// Idle connections give their reader back (idle.go). raw is the
	// socket to wait on, nil when a layer above it buffers on its own;
	// rec is the record framer under TLS; src tells whether crypto/tls
	// may still hold decrypted bytes.
	raw   *sockio.Probe
	rec   *recordConn
	src   sockio.FillTracker
	mu    sync.Mutex // guards idle and fresh
	idle  bool       // waiting for a request; Shutdown may close it
	fresh bool       // no request read yet
	born  time.Time
}

// freshGrace is how long Shutdown lets a new connection send its first
// request (net/http's Shutdown waits 5 s for a StateNew connection too):
// a client that has just connected has its request on the way, and
// closing under it would fail a request that was never answered.
const freshGrace = 5 * time.Second

// startH1 serves c in a new goroutine, unless the listener is shutting
// down.
func (l *Listener) startH1(c net.Conn) {
	ci := newConnInfo(c)
	hc := &h1conn{l: l, c: c, ci: ci, idle: true, fresh: true, born: time.Now()}
	hc.src.R = c
	if tc, ok := c.(*tls.Conn); ok {
		if hc.rec, _ = tc.NetConn().(*recordConn); hc.rec != nil {
			hc.raw = sockio.NewProbe(tcpOf(hc.rec))
		}
	} else {
		hc.raw = sockio.NewProbe(tcpOf(c))
	}
	hc.ctx, hc.cancel = context.WithCancel(context.WithValue(context.Background(), connInfoKey{}, ci))
	s := &l.h1
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		hc.cancel()
		_ = c.Close()
		return
	}
	if s.conns == nil {
		s.conns = map[*h1conn]bool{}
	}
	s.conns[hc] = true
	s.wg.Add(1)
	s.mu.Unlock()
	l.route.Load().counters.connsActive.Inc()
	go hc.serve()
}

// shutdownH1 closes idle connections at once (new ones once they had
// freshGrace to send their first request, which is answered with
// Connection: close) and the others after their current response; when
// ctx ends first it cuts them all.
func (l *Listener) shutdownH1(ctx context.Context) error {
	s := &l.h1
	closeIdle := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.closing.Store(true)
		for hc := range s.conns {
			hc.closeIfIdle()
		}
	}
	closeIdle()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }() // ends when the last connection does
	// New connections still in their grace period are looked at again.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-done:
			return nil
		case <-tick.C:
			closeIdle()
		case <-ctx.Done():
			break wait
		}
	}
	s.mu.Lock()
	for hc := range s.conns {
		hc.cancel()
		_ = hc.c.Close()
	}
	s.mu.Unlock()
	<-done // handlers stop: their member exchanges watch hc.ctx
	return ctx.Err()
}

func (hc *h1conn) setIdle(idle bool) (closing bool) {
	hc.mu.Lock()
	hc.idle = idle
	hc.fresh = false
	hc.mu.Unlock()
	return hc.l.h1.closing.Load()
}

func (hc *h1conn) closeIfIdle() {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.idle && (!hc.fresh || time.Since(hc.born) > freshGrace) {
		_ = hc.c.Close()
	}
}

func (hc *h1conn) serve() {
	s := &hc.l.h1
	hijacked := false
	defer func() {
		s.mu.Lock()
		delete(s.conns, hc)
		s.mu.Unlock()
		hc.cancel()
		if !hijacked {
			_ = hc.c.Close()
			hc.releaseReader()
		}
		hc.l.route.Load().counters.connsActive.Dec()
		s.wg.Done()
	}()
	var dl deadline
	base := (&http.Request{}).WithContext(hc.ctx)
	for {
		st := hc.l.route.Load()
		if dl.timeout = st.ClientTimeout; dl.timeout > 0 {
			if now := time.Now(); dl.due(now) {
				_ = hc.c.SetReadDeadline(now.Add(dl.timeout)) // idle, then header read
			}
		}
		if hc.br == nil {
			if hc.idleSafe() {
				if err := hc.raw.Wait(); err != nil {
					return // timeout, close or shutdown while idle
				}
			}
			hc.br = connReaders.Get().(*bufio.Reader)
			hc.br.Reset(&hc.src)
		}
		if hc.fresh && hc.rec == nil && hc.prefaceH2C() {
			hijacked = true // the HTTP/2 server owns the connection now
			return
		}
		r, body, err := hc.readRequest(base)
		if err != nil {
			hc.refuse(st, err)
			return
		}
		first := hc.fresh // written only by this goroutine
		if hc.setIdle(false) {
			r.Close = true // shutting down: this is the last response
		}
		if first && !r.Close && st.TLS == nil && hc.ci.tls == nil {
			if settings, ok := h2cUpgradeSettings(r, body); ok {
				hijacked = hc.upgradeH2C(r, settings)
				return
			}
		}
		w := newH1Response(hc, r, body)
		var aborted bool
		hijacked, aborted = hc.handle(w, r)
		if hijacked || aborted {
			return
		}
		if !w.finish() || !body.drain() {
			return
		}
		if hc.setIdle(true) {
			return
		}
		if hc.idleSafe() {
			hc.releaseReader()
		}
	}
}

// idleSafe reports whether every byte received so far has been read out of
// the layers above the socket, so waiting on the socket cannot miss any.
func (hc *h1conn) idleSafe() bool {
	return hc.raw != nil && (hc.br == nil || hc.br.Buffered() == 0) && !hc.src.Full() &&
		(hc.rec == nil || !hc.rec.pending())
}

func (hc *h1conn) releaseReader() {
	if hc.br != nil {
		hc.br.Reset(nil)
		connReaders.Put(hc.br)
		hc.br = nil
	}
}

// handle runs the listener's handler, turning a panic into a cut
// connection as net/http does.
func (hc *h1conn) handle(w *h1response, r *http.Request) (hijacked, aborted bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				hc.l.opts.Logger.Error("panic serving request", "listener", hc.l.route.Load().Listener, "panic", p, "stack", string(debug.Stack()))
			}
			w.release()
			hijacked, aborted = w.hijacked, true
		}
	}()
	hc.l.ServeHTTP(w, r)
	return w.hijacked, false
}

// readRequest reads and checks one request head and sets up its body.
func (hc *h1conn) readRequest(base *http.Request) (*http.Request, *h1body, error) {
	bp := headBufs.Get().(*[]byte)
	start, h, err := httpwire.ReadHead(hc.br, *bp, hc.l.opts.MaxHeaderBytes)
	headBufs.Put(bp)
	if err != nil {
		return nil, nil, err
	}
	method, rest, ok1 := strings.Cut(start, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !validMethod(method) || !validTarget(target) {
		return nil, nil, httpwire.Errorf("malformed request line %q", httpwire.Truncate(start, 60))
	}
	r := new(http.Request)
	*r = *base
	r.Method, r.RequestURI, r.Proto, r.Header = method, target, proto, h
	switch proto {
	case "HTTP/1.1":
		r.ProtoMajor, r.ProtoMinor = 1, 1
	case "HTTP/1.0":
		r.ProtoMajor, r.ProtoMinor = 1, 0
	default:
		return nil, nil, &versionError{proto: proto}
	}
	if method == http.MethodConnect {
		return nil, nil, httpwire.Errorf("CONNECT is not supported")
	}
	if r.URL, err = url.ParseRequestURI(target); err != nil {
		return nil, nil, httpwire.Errorf("malformed request target %q", httpwire.Truncate(target, 60))
	}
	hosts := h["Host"]
	switch {
	case len(hosts) > 1:
		return nil, nil, httpwire.Errorf("more than one Host header")
	case len(hosts) == 0 && r.ProtoMinor == 1:
		return nil, nil, httpwire.Errorf("missing Host header")
	case len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]):
		return nil, nil, httpwire.Errorf("malformed Host header")
	case r.URL.Host != "":
		r.Host = r.URL.Host // absolute-form wins (RFC 9112 §3.2.2)
	case len(hosts) == 1:
		r.Host = hosts[0]
	}
	delete(h, "Host")
	r.RemoteAddr = hc.ci.remote.String()
	r.TLS = hc.ci.tls
	r.Close = httpwire.HasToken(h, "Connection", "close") || (r.ProtoMinor == 0 && !httpwire.HasToken(h, "Connection", "keep-alive"))
	chunked, length, err := httpwire.BodyFraming(h)
	if err != nil {
		return nil, nil, err
	}
	if chunked && r.ProtoMinor == 0 {
		return nil, nil, httpwire.Errorf("Transfer-Encoding in an HTTP/1.0 request")
	}
	delete(h, "Transfer-Encoding")
	body := &h1body{hc: hc, chunked: chunked, remaining: length}
	switch {
	case chunked:
		r.ContentLength, r.TransferEncoding = -1, []string{"chunked"}
		body.cr = httputil.NewChunkedReader(hc.br)
	case length > 0:
		r.ContentLength = length
	default:
		body.remaining, body.done = 0, true
	}
	if exp := h["Expect"]; len(exp) > 0 {
		if len(exp) != 1 || !strings.EqualFold(exp[0], "100-continue") {
			return nil, nil, &expectError{}
		}
		body.needContinue = !body.done && r.ProtoMinor == 1
	}
	r.Body = http.NoBody
	if !body.done {
		r.Body = body
	}
	return r, body, nil
}

// versionError is a request in an HTTP version other than 1.0 and 1.1.
type versionError struct{ proto string }

func (e *versionError) Error() string {
	return fmt.Sprintf("unsupported HTTP version %q", httpwire.Truncate(e.proto, 20))
}

// expectError is an Expect header other than 100-continue.
type expectError struct{}

func (*expectError) Error() string { return "unsupported Expect header" }

// refuse answers a request that could not be read, unless the client just
// went away or stayed silent, and the connection is then closed.
func (hc *h1conn) refuse(st *routeState, err error) {
	var he *httpwire.HeadError
	var ve *versionError
	var ee *expectError
	status := 0
	switch {
	case errors.Is(err, httpwire.ErrHeadTooLarge):
		status = http.StatusRequestHeaderFieldsTooLarge
	case errors.As(err, &ve):
		status = http.StatusHTTPVersionNotSupported
	case errors.As(err, &ee):
		status = http.StatusExpectationFailed
	case errors.As(err, &he):
		status = http.StatusBadRequest
	}
	if status == 0 {
		return // EOF, reset, timeout or shutdown: nobody to answer
	}
	hc.l.opts.Logger.Debug("bad request", "listener", st.Listener, "client", hc.ci.clientIP, "status", status, "err", err)
	st.counters.requests[metrics.ClassIndex(status)].Inc()
	msg := http.StatusText(status) + ": " + err.Error() + "\n"
	_ = hc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(hc.c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		status, http.StatusText(status), len(msg), msg); err == nil {
		hc.lingerClose()
	}
}

// lingerClose ends the write side and reads what the client is still
// sending (at most 256 KiB for 500 ms, as net/http does) before the
// connection is closed: closing with unread data makes the kernel send a
// reset, which can destroy the error answer before the client reads it (a
// client still writing 100 KiB of headers saw "connection reset" instead
// of its 431).
func (hc *h1conn) lingerClose() {
	cw, ok := hc.c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = hc.c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	src := io.Reader(hc.c)
	if hc.br != nil {
		src = io.MultiReader(hc.br, hc.c)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(src, 256<<10))
}

// validMethod reports whether m is a token (RFC 9110 §9.1).
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return true
}

// validTarget refuses empty targets and any control character or space.
func validTarget(t string) bool {
	if t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] == 0x7f {
			return false
		}
	}
	return true
}

// h1body is a request body read from the connection as framed by its
// head. Reading it sends 100 Continue first when the client asked for it.
type h1body struct {
	hc           *h1conn
	chunked      bool
	cr           io.Reader // chunked decoder
	remaining    int64     // Content-Length bytes left
	needContinue bool
	done         bool
	err          error // sticky
}

func (b *h1body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.done {
		return 0, io.EOF
	}
	if b.needContinue {
		b.needContinue = false
		if _, err := io.WriteString(b.hc.c, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
			b.err = err
			return 0, err
		}
	}
	var n int
	var err error
	if b.chunked {
		n, err = b.cr.Read(p)
		if err == io.EOF {
			if err = httpwire.SkipTrailers(b.hc.br, b.hc.l.opts.MaxHeaderBytes); err == nil {
				b.done, err = true, io.EOF
			}
		}
	} else {
		if int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		n, err = b.hc.br.Read(p)
		b.remaining -= int64(n)
		switch {
		case b.remaining == 0:
			b.done, err = true, nil
		case err == io.EOF:
			err = io.ErrUnexpectedEOF
		}
	}
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// Close does nothing: what the handler leaves unread is drained or the
// connection closed after the response.
func (b *h1body) Close() error { return nil }

// drain reads what the handler left of the body so that the connection
// can carry the next request. It reports whether it can.
func (b *h1body) drain() bool {
	if b.done {
		return true
	}
	if b.err != nil || b.needContinue {
		return false // the client was never told to send it
	}
	n, err := io.CopyN(io.Discard, b, maxDrainBytes+1)
	return err == io.EOF && n <= maxDrainBytes
}

// checkH2Request applies the HTTP/1.x request line and Host rules to an
// HTTP/2 request's pseudo-headers: :method a token and not CONNECT, :path
// an origin-form target (or * for OPTIONS) without spaces or control
// characters, :authority a valid host.
func checkH2Request(r *http.Request) error {
	switch {
	case !validMethod(r.Method):
		return httpwire.Errorf(":method %q is not a token", httpwire.Truncate(r.Method, 40))
	case r.Method == http.MethodConnect:
		return httpwire.Errorf("CONNECT is not supported")
	case !validTarget(r.RequestURI) || (r.RequestURI[0] != '/' && (r.RequestURI != "*" || r.Method != http.MethodOptions)):
		return httpwire.Errorf("malformed :path %q", httpwire.Truncate(r.RequestURI, 60))
	case r.Host == "" || !httpguts.ValidHostHeader(r.Host) || strings.ContainsAny(r.Host, " \t"):
		return httpwire.Errorf("malformed :authority %q", httpwire.Truncate(r.Host, 60))
	}
	return nil
}

// h2cPreface opens every HTTP/2 connection (RFC 9113 §3.4).
const h2cPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// prefaceH2C hands a plain connection whose first bytes are the HTTP/2
// preface (h2c with prior knowledge) to the listener's HTTP/2 server,
// bytes already read included, and reports whether it did. Every HTTP/1
// request line has at least 4 bytes, so peeking them never waits for
// more than a request sends.
func (hc *h1conn) prefaceH2C() bool {
	b, err := hc.br.Peek(4)
	if err != nil || string(b) != h2cPreface[:4] {
		return false
	}
	if b, err = hc.br.Peek(len(h2cPreface)); err != nil || string(b) != h2cPreface {
		return false // "PRI " without the rest: refused as HTTP/1 would be
	}
	buffered, _ := hc.br.Peek(hc.br.Buffered())
	replay := append([]byte(nil), buffered...)
	hc.l.startH2(&replayConn{Conn: hc.c, r: io.MultiReader(bytes.NewReader(replay), hc.c)}, hc.ci, nil)
	return true
}

// replayConn is a connection whose first bytes were already read.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }
