package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"

	"github.com/terminator-proxy/terminator/metrics"
	"github.com/terminator-proxy/terminator/proxy/httpwire"
	"github.com/terminator-proxy/terminator/proxy/lb"
	"github.com/terminator-proxy/terminator/proxy/upstream"
)

// maxResponseHead caps a member's response head, as the former
// Transport's MaxResponseHeaderBytes did.
const maxResponseHead = 64 << 10

// maxRetries is how many other members a request refused at connect is
// offered to, as haproxy's "retries 3" with "option redispatch".
const maxRetries = 3

var (
	headBufs    = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}
	copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
)

// memberResponse is the head of a member's response and how its body is
// framed.
type memberResponse struct {
	status    int
	header    http.Header
	chunked   bool
	length    int64 // body bytes; -1: until the member closes
	keepAlive bool  // the connection can carry another request afterwards
	started   bool  // a byte of the response arrived
}

// clientBodyError is a failure to read the client's request body.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string {
	return "reading the client's request body: " + e.err.Error()
}
func (e *clientBodyError) Unwrap() error { return e.err }

// exchange sends r to x.member, retrying a refused connection on other
// members and a stale reused connection once on a fresh one (only when
// the request can be sent again), then relays the response to w. It
// reports whether the response had to be cut short after its head.
func (f *Forwarder) exchange(w http.ResponseWriter, r *http.Request, x *exchange, up *upstream.Pool) (aborted bool) {
	ctx := r.Context()
	var upgrade string
	if vs := r.Header["Upgrade"]; len(vs) == 1 && httpwire.HasToken(r.Header, "Connection", "upgrade") {
		upgrade = vs[0]
	}
	h := outboundHeader(r, x)
	idempotent := isIdempotent(r.Method)
	var tried []*lb.Member // allocated only when a retry happens
	redialed := false
	for {
		var mc *upstream.Conn
		var err error
		if redialed {
			mc, err = up.Dial(ctx, x.client(), x.member.Addr)
		} else {
			mc, err = up.Get(ctx, x.client(), x.member.Addr)
		}
		if err == nil {
			// A client gone (HTTP/2 reset) or a connection cut at shutdown
			// ends the exchange at once rather than at the member timeout.
			stop := context.AfterFunc(ctx, mc.Close)
			var resp memberResponse
			resp, err = roundTrip(mc, r, h, x, upgrade)
			if err == nil {
				aborted, keep := f.relay(w, r, x, mc, &resp)
				if stop() && keep && mc.AtBoundary() {
					up.Put(mc)
				} else {
					mc.Close()
				}
				return aborted
			}
			stop()
			mc.Close()
			if mc.Reused() && !resp.started && idempotent && bodyUnsent(x) && !redialed && ctx.Err() == nil {
				redialed = true // the member closed it while it was idle
				continue
			}
		} else if x.retryElsewhere(ctx, err, &tried) {
			redialed = false
			continue
		}
		f.fail(w, r, x, err)
		return false
	}
}

// retryElsewhere moves x to another member of its pool when err is a
// refused connection and the request can be sent again (haproxy's retries
// 3 with option redispatch), counting the failure against the member left.
// tried holds the members tried so far; it reports whether to try again.
func (x *exchange) retryElsewhere(ctx context.Context, err error, tried *[]*lb.Member) bool {
	if !isDialError(err) || len(*tried) >= maxRetries || !bodyUnsent(x) || ctx.Err() != nil {
		return false
	}
	if *tried == nil {
		*tried = []*lb.Member{x.member}
	}
	next := x.pool.NextExcluding(x.ci.clientIP, *tried)
	if next == nil {
		return false
	}
	x.member.Errors("connect").Inc()
	x.member.State().ConnectFailed()
	x.pool.CountRetry()
	next.State().AddActive(1)
	x.member.State().AddActive(-1)
	x.member = next
	*tried = append(*tried, next)
	return true
}

// client is what a new member connection carries of x's client.
func (x *exchange) client() upstream.Client {
	c := upstream.Client{Remote: x.ci.remote, Local: x.ci.local}
	if x.ci.tls != nil {
		c.ServerName = x.ci.tls.ServerName
	}
	return c
}

// bodyUnsent reports whether the request can be sent again: it has no
// body, or none of its body was read.
func bodyUnsent(x *exchange) bool { return x.body == nil || x.body.n == 0 }

func isIdempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// outboundHeader is the client's header as the member gets it: without
// hop-by-hop fields and framing, with the listener's inserted headers.
// Values are shared with the client's header, never modified in place.
func outboundHeader(r *http.Request, x *exchange) http.Header {
	named := httpwire.ConnectionOptions(r.Header)
	h := make(http.Header, len(r.Header)+3)
	for k, vs := range r.Header {
		if httpwire.HopByHop(k) || named[k] || k == "Host" || k == "Content-Length" || k == "Expect" {
			continue
		}
		h[k] = vs
	}
	x.route.Headers.apply(h, r.Header, x.ci)
	if x.pool.Persistence() == lb.PersistHTTPCookie {
		lb.StripPersistCookie(h)
	}
	return h
}

// roundTrip writes the request to mc and reads the response head.
func roundTrip(mc *upstream.Conn, r *http.Request, h http.Header, x *exchange, upgrade string) (memberResponse, error) {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(mc.Net)
	werr := writeRequest(bw, r, h, x, upgrade)
	bw.Reset(nil)
	writers.Put(bw)
	var cbe *clientBodyError
	if errors.As(werr, &cbe) {
		return memberResponse{}, werr // the request is incomplete: no answer can be trusted
	}
	resp, err := readResponse(mc, r, upgrade)
	if err != nil && werr != nil {
		return resp, fmt.Errorf("sending the request: %w", werr)
	}
	if err == nil && werr != nil {
		resp.keepAlive = false // an early answer; the request was cut short
	}
	return resp, err
}

// originForm is r's target as the client sent it, in origin form (an
// absolute-form target loses its scheme and authority).
func originForm(r *http.Request) string {
	if uri := r.RequestURI; uri != "" && (uri[0] == '/' || uri == "*") {
		return uri
	}
	return r.URL.RequestURI()
}

// writeRequest writes the request line, the header and the body. Framing
// is terminator's own: Content-Length when the length is known, chunked
// otherwise.
func writeRequest(bw *bufio.Writer, r *http.Request, h http.Header, x *exchange, upgrade string) error {
	uri := originForm(r)
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	httpwire.WriteFields(bw, h)
	if upgrade != "" {
		bw.WriteString("Connection: Upgrade\r\nUpgrade: ")
		bw.WriteString(upgrade)
		bw.WriteString("\r\n")
	}
	chunked := false
	switch {
	case x.body == nil:
		if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
			bw.WriteString("Content-Length: 0\r\n")
		}
	case r.ContentLength >= 0:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(r.ContentLength, 10))
		bw.WriteString("\r\n")
	default:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		chunked = true
	}
	bw.WriteString("\r\n")
	if x.body != nil {
		if err := writeBody(bw, x.body, r.ContentLength, chunked); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// writeBody copies the client's body to the member, re-framed.
func writeBody(bw *bufio.Writer, body *clientBody, length int64, chunked bool) error {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	var dst io.Writer = bw
	var cw io.WriteCloser
	if chunked {
		cw = httputil.NewChunkedWriter(bw)
		dst = cw
	}
	var n int64
	for {
		m, rerr := body.Read(*bp)
		if m > 0 {
			if _, err := dst.Write((*bp)[:m]); err != nil {
				return err
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return &clientBodyError{err: rerr}
		}
	}
	if length >= 0 && n != length {
		return &clientBodyError{err: io.ErrUnexpectedEOF}
	}
	if chunked {
		if err := cw.Close(); err != nil {
			return err
		}
		_, err := bw.WriteString("\r\n") // no trailers
		return err
	}
	return nil
}

// readResponse reads the member's response head, skipping interim (1xx)
// responses other than 101, and works out the body's framing.
func readResponse(mc *upstream.Conn, r *http.Request, upgrade string) (memberResponse, error) {
	bp := headBufs.Get().(*[]byte)
	defer headBufs.Put(bp)
	resp := memberResponse{}
	for interim := 0; ; interim++ {
		if _, err := mc.R.Peek(1); err != nil {
			return resp, err
		}
		resp.started = true
		start, h, err := httpwire.ReadHead(mc.R, *bp, maxResponseHead)
		if err != nil {
			return resp, fmt.Errorf("reading the response head: %w", err)
		}
		proto, code, ok := httpwire.ParseStatusLine(start)
		if !ok {
			return resp, httpwire.Errorf("malformed status line %q", httpwire.Truncate(start, 40))
		}
		if code == http.StatusSwitchingProtocols {
			if upgrade == "" {
				return resp, httpwire.Errorf("101 Switching Protocols without an upgrade request")
			}
			resp.status, resp.header = code, h
			return resp, nil
		}
		if code < 200 {
			if interim >= 8 {
				return resp, httpwire.Errorf("too many interim responses")
			}
			continue
		}
		resp.status, resp.header = code, h
		resp.chunked, resp.length, err = httpwire.BodyFraming(h)
		if err != nil {
			return resp, err
		}
		if r.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified {
			resp.chunked, resp.length = false, 0
		}
		resp.keepAlive = !httpwire.HasToken(h, "Connection", "close") && (resp.chunked || resp.length >= 0) &&
			(proto == "HTTP/1.1" || httpwire.HasToken(h, "Connection", "keep-alive"))
		return resp, nil
	}
}

// relay copies the member's response to the client. keep reports that the
// response ended cleanly and the member connection can carry another.
func (f *Forwarder) relay(w http.ResponseWriter, r *http.Request, x *exchange, mc *upstream.Conn, resp *memberResponse) (aborted, keep bool) {
	out := w.Header()
	copyEndToEnd(out, resp.header)
	x.member.Requests(metrics.ClassIndex(resp.status)).Inc()
	if resp.status == http.StatusSwitchingProtocols {
		f.tunnel(w, r, x, mc, resp)
		return false, false
	}
	f.finishHead(w, r, x, resp.status)
	w.WriteHeader(resp.status)
	if resp.length == 0 {
		return false, resp.keepAlive
	}
	if err, clientSide := copyResponseBody(w, mc.R, resp); err != nil {
		if clientSide {
			x.member.Errors("client_gone").Inc()
			f.log.Debug("client went away during the response", "listener", x.route.Listener, "err", err)
		} else {
			_, reason, _ := errorStatus(err)
			x.member.Errors(reason).Inc()
			f.log.Warn("member response cut short", "listener", x.route.Listener, "member", x.member.Name, "addr", x.member.Addr, "err", err)
		}
		return true, false
	}
	return false, resp.keepAlive
}

// copyEndToEnd copies a member's response header fields into out, leaving
// out the hop-by-hop ones and those its Connection header names.
func copyEndToEnd(out, h http.Header) {
	named := httpwire.ConnectionOptions(h)
	for k, vs := range h {
		if !httpwire.HopByHop(k) && !named[k] {
			out[k] = vs
		}
	}
}

// finishHead adds what terminator adds to every member's response head
// (HSTS, the persistence cookie) and feeds the status to passive health.
func (f *Forwarder) finishHead(w http.ResponseWriter, r *http.Request, x *exchange, status int) {
	out := w.Header()
	if x.route.Headers.HSTS != "" && x.ci.tls != nil {
		out.Set("Strict-Transport-Security", x.route.Headers.HSTS)
	}
	x.pool.PersistResponse(out, r, x.member)
	if x.member.State().Answered(status) {
		f.log.Warn("member held out for a burst of 5xx answers", "pool", x.pool.Name, "member", x.member.Name, "for", lb.PassiveHold)
	}
}

// copyResponseBody copies the body as framed by resp. Bodies of unknown
// length are flushed to the client as they arrive (streaming). clientSide
// tells a failed write to the client from a failed read from the member.
func copyResponseBody(w http.ResponseWriter, br *bufio.Reader, resp *memberResponse) (err error, clientSide bool) {
	if resp.length > 0 && int64(br.Buffered()) >= resp.length {
		// The whole body is already buffered (small responses).
		b, _ := br.Peek(int(resp.length))
		if _, err := w.Write(b); err != nil {
			return err, true
		}
		_, _ = br.Discard(len(b))
		return nil, false
	}
	var src io.Reader = br
	var flush func() error
	if resp.chunked || resp.length < 0 {
		flush = http.NewResponseController(w).Flush
		if resp.chunked {
			src = httputil.NewChunkedReader(br)
		}
	}
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	remaining := resp.length
	for {
		if resp.length >= 0 && int64(len(buf)) > remaining {
			buf = buf[:remaining]
		}
		if len(buf) == 0 {
			return nil, false
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err, true
			}
			remaining -= int64(n)
			if flush != nil {
				_ = flush()
			}
		}
		switch {
		case rerr == io.EOF && resp.chunked:
			return httpwire.SkipTrailers(br, maxResponseHead), false
		case rerr == io.EOF && resp.length < 0:
			return nil, false
		case rerr == io.EOF:
			return io.ErrUnexpectedEOF, false
		case rerr != nil:
			return rerr, false
		}
	}
}

// tunnel completes a protocol upgrade (WebSocket): it takes over the
// client connection, sends the 101 head, and copies bytes both ways until
// either side closes or the member stays silent for the member timeout.
func (f *Forwarder) tunnel(w http.ResponseWriter, r *http.Request, x *exchange, mc *upstream.Conn, resp *memberResponse) {
	defer mc.Close()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		clear(w.Header())
		f.fail(w, r, x, fmt.Errorf("taking over the client connection for the upgrade: %w", err))
		return
	}
	defer conn.Close()
	if rec, ok := w.(*recorder); ok {
		rec.status = http.StatusSwitchingProtocols
	}
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	_ = w.Header().Write(brw)
	brw.WriteString("Connection: Upgrade\r\nUpgrade: ")
	brw.WriteString(strings.Join(resp.header["Upgrade"], ", "))
	brw.WriteString("\r\n\r\n")
	if err := brw.Flush(); err != nil {
		return
	}
	done := make(chan struct{})
	go func() { // owned by this call, which waits for it
		defer close(done)
		_, _ = io.Copy(mc.Net, brw.Reader) // buffered bytes first, then the connection
		mc.Close()
		conn.Close()
	}()
	_, _ = io.Copy(conn, mc.R)
	mc.Close()
	conn.Close()
	<-done
}
