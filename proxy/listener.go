package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/terminator-proxy/terminator/metrics"
	"github.com/terminator-proxy/terminator/proxy/l7"
	"github.com/terminator-proxy/terminator/proxy/lb"
	"github.com/terminator-proxy/terminator/proxy/upstream"
	"github.com/terminator-proxy/terminator/sni"
)

// ErrListenerClosed is returned by Shutdown on a listener already shut down.
var ErrListenerClosed = errors.New("proxy: listener closed")

// defaultHandshakeTimeout bounds handshakes when the route sets no client
// timeout: a handshake is never allowed to hang.
const defaultHandshakeTimeout = 60 * time.Second

// ListenerOptions configure a Listener.
type ListenerOptions struct {
	Forwarder *Forwarder
	Logger    *slog.Logger
	Metrics   *metrics.Metrics
	// MaxHeaderBytes caps request headers; default 64 KiB.
	MaxHeaderBytes int
	// Challenges, if set, answers ACME challenges: HTTP-01 requests on
	// plain HTTP listeners and TLS-ALPN-01 handshakes on TLS ones.
	Challenges ChallengeResponder
}

// Listener serves one bound socket. Its Route can be swapped at any time
// with Update; Shutdown drains it. All methods are safe for concurrent use.
type Listener struct {
	opts  ListenerOptions
	ln    net.Listener
	limit *limiter
	base  *tls.Config // long-lived: owns the session ticket keys
	route atomic.Pointer[routeState]
	// ctx is cancelled by Shutdown; the accept loop stops on it.
	ctx    context.Context
	cancel context.CancelFunc
	// hard is cancelled when Shutdown's drain deadline passes (or it
	// returns): handshakes in progress and layer-4 relays run until then,
	// so a drain (a reload, a binary upgrade) cuts no connection it has
	// time to finish.
	hard       context.Context
	cancelHard context.CancelFunc
	wg         sync.WaitGroup // the accept loop, handshakes and layer-4 relays
	stopOnce   sync.Once      // StopAccepting

	mu     sync.Mutex // guards closed
	closed bool

	h1 h1conns // HTTP/1.x connections
	h2 h2conns // HTTP/2 connections
}

// NewListener serves ln with route r. It takes ownership of ln.
func NewListener(ln net.Listener, r *Route, o ListenerOptions) *Listener {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	l := &Listener{
		opts:  o,
		ln:    ln,
		limit: newLimiter(r.ConnectionLimit),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.hard, l.cancelHard = context.WithCancel(context.Background())
	// The base config never serves a handshake itself: it hands out the
	// current route's config, built once per snapshot and never cloned, and
	// keeps the ticket keys, so sessions resume across reloads.
	l.base = &tls.Config{
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if c := l.acmeTLSConfig(hello); c != nil {
				return c, nil
			}
			if c := l.route.Load().TLS; c != nil {
				return c, nil
			}
			return nil, errors.New("proxy: listener no longer serves TLS")
		},
	}
	l.route.Store(l.newRouteState(r))
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

func (l *Listener) newRouteState(r *Route) *routeState {
	if r.TLS != nil && r.TicketLifetime > 0 && r.TLS.WrapSession == nil {
		l.boundTickets(r.TLS, r.TicketLifetime) // before any handshake uses it
	}
	st := &routeState{Route: r, counters: newCounters(l.opts.Metrics, r.Listener), transport: l.opts.Forwarder.transportFor(r)}
	for _, p := range append([]*lb.Pool{r.Pool}, r.Router.Targets()...) {
		if p != nil && p.HTTP2() {
			if st.poolH2 == nil {
				st.poolH2 = map[*lb.Pool]*upstream.H2Pool{}
			}
			st.poolH2[p] = l.opts.Forwarder.h2.Get(upstream.H2Key{Connect: r.ConnectTimeout, Idle: r.MemberTimeout, TLSKey: p.TLSKey(), H2C: p.TLS() == nil}, p.TLS())
			continue
		}
		if p == nil || (p.ProxyVersion() == 0 && p.TLS() == nil) {
			continue
		}
		if st.poolTransports == nil {
			st.poolTransports = map[*lb.Pool]*upstream.Pool{}
		}
		st.poolTransports[p] = l.opts.Forwarder.upstreams.Get(upstream.Key{
			Connect: r.ConnectTimeout, Idle: r.MemberTimeout, ProxyVersion: p.ProxyVersion(), TLSKey: p.TLSKey(),
		}, p.TLS())
	}
	return st
}

// Addr is the bound address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Update swaps the route. Requests in flight finish with the old route;
// connections carry on with the new one (an HTTP/2 connection keeps the
// idle timeout it started with).
func (l *Listener) Update(r *Route) {
	l.route.Store(l.newRouteState(r))
	l.limit.setLimit(r.ConnectionLimit)
}

// SetSessionTicketKeys installs shared ticket keys: the first encrypts,
// all decrypt. See tls.Config.SetSessionTicketKeys.
func (l *Listener) SetSessionTicketKeys(keys [][32]byte) { l.base.SetSessionTicketKeys(keys) }

// StopAccepting closes the listening socket (this process's descriptor of
// it), so that its address is free when it returns; Shutdown then drains.
func (l *Listener) StopAccepting() error {
	var err error
	l.stopOnce.Do(func() {
		l.cancel()
		err = l.ln.Close()
	})
	return err
}

// Shutdown stops accepting, lets in-flight requests finish until ctx is
// done, then closes what remains. It returns ctx's error if it had to cut
// requests short.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrListenerClosed
	}
	l.closed = true
	l.mu.Unlock()

	// Connections waiting for a slot over connection_limit give up at the
	// deadline too; closing the limiter earlier would refuse one that the
	// accept loop took just before the socket closed.
	hard := func() { l.cancelHard(); l.limit.close() }
	stop := context.AfterFunc(ctx, hard)
	defer stop()
	defer hard()
	err := l.StopAccepting()
	// Handshakes in progress complete and their connections are served,
	// layer-4 relays finish, all before ctx's deadline.
	l.wg.Wait()
	// Both kinds drain at once: HTTP/2 clients get GOAWAY now, not after
	// the last HTTP/1.x response.
	errs := make(chan error, 1)
	go func() { errs <- l.shutdownH2(ctx) }()
	if e := l.shutdownH1(ctx); e != nil {
		err = e
	}
	if e := <-errs; e != nil {
		err = e
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// acceptLoop accepts connections and starts their handshakes. It backs off
// on temporary errors as net/http does, from 5ms up to 1s.
func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.opts.Logger.Warn("accept failed; retrying", "listener", l.route.Load().Listener, "err", err, "delay", delay)
			select {
			case <-time.After(delay):
			case <-l.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		st := l.route.Load()
		st.counters.connsTotal.Inc()
		if !l.limit.acquire(0) {
			// Over connection_limit: wait for a slot off the accept loop,
			// then serve or refuse.
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				if !l.limit.acquire(queueTimeout(st)) {
					l.recordHandshakeFailure(st, errConnectionLimit)
					_ = c.Close()
					return
				}
				l.serveConn(c, st)
			}()
			continue
		}
		l.serveConn(c, st)
	}
}

// queueTimeout is how long a connection over connection_limit waits for a
// slot: the member connect timeout, as haproxy's timeout queue defaults to
// timeout connect (5 s when unset).
func queueTimeout(st *routeState) time.Duration {
	if st.ConnectTimeout > 0 {
		return st.ConnectTimeout
	}
	return 5 * time.Second
}

// errConnectionLimit marks connections refused after waiting for a slot.
var errConnectionLimit = errors.New("proxy: connection_limit reached")

// serveConn starts serving an accepted connection that holds a slot.
func (l *Listener) serveConn(c net.Conn, st *routeState) {
	var lc net.Conn = &limitedConn{Conn: c, l: l.limit}
	proxied := inPrefixes(st.ProxyFrom, c.RemoteAddr())
	if !proxied && !st.allows(c.RemoteAddr()) {
		l.recordHandshakeFailure(st, errNotAllowed)
		_ = lc.Close()
		return
	}
	if st.Layer4 && !proxied {
		l.wg.Add(1)
		go l.serveTCP(lc, st)
		return
	}
	if st.TLS == nil && !proxied {
		l.startH1(lc)
		return
	}
	if proxied {
		// The header is read in the connection's goroutine, never in
		// the accept loop, so a silent client cannot stall accepts.
		lc = proxyproto.NewConn(lc, proxyproto.WithPolicy(proxyproto.REQUIRE), proxyproto.SetReadHeaderTimeout(handshakeTimeout(st)))
	}
	l.wg.Add(1)
	go l.handshake(lc, st, proxied)
}

// handshake completes the TLS handshake before the HTTP server sees the
// connection, so that failures are counted by reason and never reach the
// server's error log one by one.
func (l *Listener) handshake(c net.Conn, st *routeState, proxied bool) {
	defer l.wg.Done()
	if proxied {
		pc := c.(*proxyproto.Conn)
		if pc.ProxyHeader() == nil { // reads it, bounded by the header timeout
			l.recordHandshakeFailure(st, errProxyHeader)
			_ = c.Close()
			return
		}
		if !st.allows(pc.RemoteAddr()) {
			l.recordHandshakeFailure(st, errNotAllowed)
			_ = c.Close()
			return
		}
		if st.Layer4 {
			l.wg.Add(1)
			go l.serveTCP(c, st)
			return
		}
		if st.TLS == nil {
			l.startH1(c)
			return
		}
	}
	ctx, cancel := context.WithTimeout(l.hard, handshakeTimeout(st))
	defer cancel()
	rc := &recordConn{Conn: c}
	tc := tls.Server(rc, l.base)
	err := tc.HandshakeContext(ctx)
	rc.alerts.Release(rc.Conn, err)
	if err != nil {
		l.recordHandshakeFailure(st, err)
		_ = tc.Close()
		return
	}
	cs := tc.ConnectionState()
	if cs.NegotiatedProtocol == acmeALPN {
		_ = tc.Close() // a validation: nothing is served on it
		return
	}
	l.recordHandshake(st, cs)
	if cs.NegotiatedProtocol == "h2" {
		l.startH2(tc, nil, nil)
		return
	}
	l.startH1(tc)
}

// handshakeTimeout bounds a handshake (and a PROXY header): the client
// timeout, never unbounded.
func handshakeTimeout(st *routeState) time.Duration {
	if t := st.ClientTimeout; t > 0 && t <= defaultHandshakeTimeout {
		return t
	}
	return defaultHandshakeTimeout
}

// errProxyHeader marks connections from a PROXY source without a valid header.
var errProxyHeader = errors.New("proxy: missing or invalid PROXY protocol header")

// ServeHTTP implements http.Handler for the listener's current route.
func (l *Listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := l.route.Load()
	ci := connInfoFrom(r.Context())
	start := time.Now()
	rec := &recorder{ResponseWriter: w, rc: deadlinesOf(w), dl: deadline{timeout: st.ClientTimeout}}
	if st.Exporter != nil {
		if r.Method != http.MethodGet || r.URL.Path != "/metrics" {
			writeError(rec, http.StatusNotFound, "this listener serves GET /metrics")
		} else {
			st.Exporter.ServeHTTP(rec, r)
		}
		l.finish(st, r, rec, nil, ci, nil, start)
		return
	}
	if r.ProtoMajor == 2 {
		// h2server checks the HTTP/2 framing of the pseudo-headers; their
		// values become the member's request line and Host, so they get
		// the HTTP/1.x path's rules here (RFC 9113 §8.3).
		if err := checkH2Request(r); err != nil {
			l.opts.Logger.Debug("HTTP/2 request refused", "listener", st.Listener, "err", err)
			writeError(rec, http.StatusBadRequest, "malformed request")
			l.finish(st, r, rec, nil, ci, nil, start)
			return
		}
	}
	if st.TLS == nil && l.answerHTTP01(rec, r) {
		l.finish(st, r, rec, nil, ci, nil, start)
		return
	}
	if st.RequestID && r.Header.Get(requestIDHeader) == "" {
		r.Header.Set(requestIDHeader, newRequestID())
	}
	if st.Redirect != "" {
		redirect(rec, st.Redirect, st.RedirectCode, r)
		l.finish(st, r, rec, nil, ci, nil, start)
		return
	}
	pool := st.Pool
	if pol := st.Router.Match(r, ci); pol != nil {
		switch pol.Action {
		case l7.ActionReject:
			writeError(rec, http.StatusForbidden, "the request was rejected by policy")
			l.finish(st, r, rec, nil, ci, nil, start)
			return
		case l7.ActionRedirectURL:
			rec.Header().Set("Location", pol.URL)
			rec.WriteHeader(pol.Code)
			l.finish(st, r, rec, nil, ci, nil, start)
			return
		case l7.ActionRedirectPrefix:
			redirect(rec, pol.Prefix, pol.Code, r)
			l.finish(st, r, rec, nil, ci, nil, start)
			return
		case l7.ActionRedirectPool:
			pool = pol.Target
		}
	}
	var member *lb.Member
	if pool != nil {
		member = pool.Select(r, ci.clientIP)
	}
	var body *clientBody
	var aborted bool
	switch {
	case pool == nil:
		writeError(rec, http.StatusServiceUnavailable, "the listener has no pool")
	case member == nil:
		writeError(rec, http.StatusServiceUnavailable, "no pool member is available")
	default:
		body, aborted = l.opts.Forwarder.forward(rec, r, st, pool, member, ci)
	}
	l.finish(st, r, rec, member, ci, body, start)
	if aborted {
		panic(http.ErrAbortHandler) // net/http closes the connection without logging
	}
}

func (l *Listener) finish(st *routeState, r *http.Request, rec *recorder, m *lb.Member, ci *connInfo, body *clientBody, start time.Time) {
	elapsed := time.Since(start)
	st.counters.requests[metrics.ClassIndex(rec.status)].Inc()
	st.counters.bytesOut.Add(float64(rec.n))
	st.counters.duration.Observe(elapsed.Seconds())
	var in int64
	if body != nil {
		in = body.n
		st.counters.bytesIn.Add(float64(in))
	}
	if !st.AccessLog {
		return
	}
	member := "-"
	if m != nil {
		member = m.Addr
	}
	if st.Access != nil {
		st.Access.Log(accessEntry(st, r, rec, m, ci, in, start, elapsed))
		return
	}
	l.opts.Logger.LogAttrs(r.Context(), slog.LevelInfo, "access",
		slog.String("listener", st.Listener),
		slog.String("client", ci.clientIP),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("uri", r.RequestURI),
		slog.String("proto", r.Proto),
		slog.Int("status", rec.status),
		slog.Int64("bytes_in", in),
		slog.Int64("bytes_out", rec.n),
		slog.String("member", member),
		slog.Duration("duration", elapsed),
	)
}

func (l *Listener) recordHandshake(st *routeState, cs tls.ConnectionState) {
	if l.opts.Metrics == nil {
		return
	}
	l.opts.Metrics.Handshakes.WithLabelValues(st.Listener, tls.VersionName(cs.Version), fmt.Sprint(cs.DidResume)).Inc()
}

func (l *Listener) recordHandshakeFailure(st *routeState, err error) {
	reason := handshakeFailureReason(err)
	if l.opts.Metrics != nil {
		l.opts.Metrics.HandshakeFailures.WithLabelValues(st.Listener, reason).Inc()
	}
	if cert := sni.ClientCertReason(err); cert != "" {
		// Once per refused connection: operators need to see who was
		// refused and why (revoked, expired, unknown_ca, ...).
		l.opts.Logger.Info("client certificate refused", "listener", st.Listener, "reason", cert, "err", err)
		return
	}
	l.opts.Logger.Debug("TLS handshake failed", "listener", st.Listener, "reason", reason, "err", err)
}
