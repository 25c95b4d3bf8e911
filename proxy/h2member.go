package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/terminator-proxy/terminator/metrics"
	"github.com/terminator-proxy/terminator/proxy/httpwire"
	"github.com/terminator-proxy/terminator/proxy/lb"
)

// HTTP/2 to members. A pool that offers h2 to TLS members (alpn_protocols)
// or speaks h2c with prior knowledge is served by net/http's client
// transport: one multiplexed connection per member carries every stream,
// trailers travel both ways and a client's reset or deadline cancels the
// member's stream. Other pools keep terminator's own HTTP/1.1 exchange.

// h2Key identifies an HTTP/2 member transport: shared by every route with
// the same timeouts and pool TLS settings.
type h2Key struct {
	connect, idle time.Duration
	tlsKey        string // "" for h2c
	h2c           bool
}

// h2transports holds one transport per h2Key for the Forwarder's life, so
// member connections survive reloads.
type h2transports struct {
	mu    sync.Mutex
	byKey map[h2Key]*http.Transport
	dial  DialFunc
}

func (t *h2transports) get(k h2Key, tlsCfg *tls.Config) *http.Transport {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr, ok := t.byKey[k]; ok {
		return tr
	}
	dialer := &net.Dialer{Timeout: k.connect, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := t.dial(ctx, dialer, network, addr)
			if err != nil {
				return nil, err
			}
			return newCorkedConn(c), nil
		},
		TLSClientConfig:        tlsCfg,
		TLSHandshakeTimeout:    k.connect,
		ResponseHeaderTimeout:  k.idle,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConnsPerHost:    64,
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxResponseHead,
		Protocols:              new(http.Protocols),
		// Pings find a member connection that died silently, whatever
		// its streams are waiting for.
		HTTP2: &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second},
	}
	if k.h2c {
		tr.Protocols.SetUnencryptedHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true) // a member that does not select h2
		tr.Protocols.SetHTTP2(true)
	}
	t.byKey[k] = tr
	return tr
}

func (t *h2transports) retainTLS(keep map[string]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, tr := range t.byKey {
		if k.tlsKey != "" && !keep[k.tlsKey] {
			tr.CloseIdleConnections()
			delete(t.byKey, k)
		}
	}
}

func (t *h2transports) closeIdle() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tr := range t.byKey {
		tr.CloseIdleConnections()
	}
}

// exchangeH2 sends r to x.member over tr and relays the response,
// trailers included. A refused connection is offered to other members as
// the HTTP/1.1 exchange does. It reports whether the response had to be
// cut short after its head.
func (f *Forwarder) exchangeH2(w http.ResponseWriter, r *http.Request, x *exchange, tr *http.Transport, scheme string) (aborted bool) {
	out := &http.Request{
		Method: r.Method, Host: r.Host, Header: outboundHeader(r, x), Trailer: r.Trailer,
		URL:           &url.URL{Scheme: scheme, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery},
		ContentLength: r.ContentLength, Body: http.NoBody,
	}
	if x.body != nil {
		out.Body = io.NopCloser(x.body) // the server closes the client's body
	} else {
		out.ContentLength = 0
	}
	if httpwire.HasToken(r.Header, "Te", "trailers") {
		out.Header["Te"] = []string{"trailers"} // gRPC needs it; the only TE HTTP/2 allows
	}
	ctx, cancel := context.WithCancel(r.Context()) // a client's reset cancels the member's stream
	defer cancel()
	out = out.WithContext(ctx)
	start := time.Now()
	var tried []*lb.Member
	for {
		out.URL.Host = x.member.Addr
		resp, err := tr.RoundTrip(out)
		if err == nil {
			idle := watchIdle(x.route.MemberTimeout, cancel)
			defer idle.stop()
			return f.relayH2(w, r, x, resp, idle)
		}
		if x.retryElsewhere(r.Context(), err, &tried) {
			continue
		}
		if isGRPC(r) && r.Context().Err() == nil && grpcDeadlinePassed(r, start) {
			// The member reset the stream because the call's deadline
			// fired there, usually just before the client's own: not a
			// member failure.
			x.member.Requests(0).Inc()
			writeGRPCStatus(w, "4", "deadline exceeded at the backend member") // DEADLINE_EXCEEDED
			return false
		}
		f.fail(w, r, x, err)
		return false
	}
}

// isGRPC reports whether r is a gRPC call (RFC-less, but every gRPC
// implementation sends this content type).
func isGRPC(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

// grpcDeadlinePassed reports whether r's grpc-timeout has run out since
// start.
func grpcDeadlinePassed(r *http.Request, start time.Time) bool {
	d, ok := grpcTimeout(r.Header.Get("Grpc-Timeout"))
	return ok && time.Since(start) >= d-10*time.Millisecond
}

// writeGRPCStatus answers a gRPC call that got no response from its member
// with a status in a trailers-only response.
func writeGRPCStatus(w http.ResponseWriter, code, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", code)
	h.Set("Grpc-Message", msg)
	w.WriteHeader(http.StatusOK)
}

// grpcTimeout parses a grpc-timeout value: up to 8 digits and a unit
// (H, M, S, m, u, n).
func grpcTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// relayH2 copies a member's response to the client, flushing as data
// arrives (gRPC streams), then its trailers.
func (f *Forwarder) relayH2(w http.ResponseWriter, r *http.Request, x *exchange, resp *http.Response, idle *idleWatch) (aborted bool) {
	defer resp.Body.Close()
	out := w.Header()
	copyEndToEnd(out, resp.Header)
	for k := range resp.Trailer {
		out.Add("Trailer", k)
	}
	if len(resp.Trailer) > 0 {
		out.Del("Content-Length") // an HTTP/1.1 client gets trailers only after a chunked body
	}
	x.member.Requests(metrics.ClassIndex(resp.StatusCode)).Inc()
	f.finishHead(w, r, x, resp.StatusCode)
	w.WriteHeader(resp.StatusCode)
	flush := http.NewResponseController(w).Flush
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	for {
		n, rerr := resp.Body.Read(*bp)
		idle.touch()
		if n > 0 {
			if _, err := w.Write((*bp)[:n]); err != nil {
				x.member.Errors("client_gone").Inc()
				return true
			}
			_ = flush()
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			switch {
			case idle.fired():
				x.member.Errors("timeout").Inc()
				f.log.Warn("member silent for longer than timeout_member_data; stream cut", "listener", x.route.Listener, "member", x.member.Name, "addr", x.member.Addr, "timeout", x.route.MemberTimeout)
			case r.Context().Err() != nil:
				x.member.Errors("client_gone").Inc()
			default:
				_, reason, _ := errorStatus(rerr)
				x.member.Errors(reason).Inc()
				f.log.Warn("member response cut short", "listener", x.route.Listener, "member", x.member.Name, "addr", x.member.Addr, "err", rerr)
			}
			return true
		}
	}
	for k, vs := range resp.Trailer {
		out[http.TrailerPrefix+k] = vs
	}
	return false
}

// idleWatch is timeout_member_data on an HTTP/2 member stream once its
// response has begun (the transport's ResponseHeaderTimeout covers the wait
// for the head): a member silent that long has its stream cancelled, as
// haproxy's timeout server cuts a silent connection. A nil watch (no
// timeout) does nothing.
type idleWatch struct {
	d     time.Duration
	t     *time.Timer
	fires atomic.Bool
}

func watchIdle(d time.Duration, cancel context.CancelFunc) *idleWatch {
	if d <= 0 {
		return nil
	}
	w := &idleWatch{d: d}
	w.t = time.AfterFunc(d, func() { w.fires.Store(true); cancel() })
	return w
}

// touch restarts the wait: the member just sent something.
func (w *idleWatch) touch() {
	if w != nil && !w.fires.Load() {
		w.t.Reset(w.d)
	}
}

func (w *idleWatch) fired() bool { return w != nil && w.fires.Load() }

func (w *idleWatch) stop() {
	if w != nil {
		w.t.Stop()
	}
}
