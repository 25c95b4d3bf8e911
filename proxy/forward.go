package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// Forwarder sends requests to pool members over one shared transport with
// keep-alive connection reuse per member. One Forwarder serves every
// listener of the process; it is safe for concurrent use.
type Forwarder struct {
	upstreams *transports
	rp        *httputil.ReverseProxy
	log       *slog.Logger
}

// ForwarderOptions configure NewForwarder. The zero value is usable.
type ForwarderOptions struct {
	Logger *slog.Logger
	// MaxIdlePerMember caps idle keep-alive connections kept per member
	// (default 1024; Go's default of 2 churns connections under load).
	MaxIdlePerMember int
}

const copyBufferSize = 32 << 10

// NewForwarder returns a Forwarder.
func NewForwarder(o ForwarderOptions) *Forwarder {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxIdlePerMember <= 0 {
		o.MaxIdlePerMember = 1024
	}
	f := &Forwarder{log: o.Logger, upstreams: &transports{
		byKey:    map[upstreamKey]*http.Transport{},
		maxIdle:  o.MaxIdlePerMember,
		dialOpts: net.Dialer{KeepAlive: 30 * time.Second},
	}}
	pool := &sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}
	f.rp = &httputil.ReverseProxy{
		Rewrite:        f.rewrite,
		Transport:      roundTripper{},
		BufferPool:     bufferPool{pool},
		ModifyResponse: f.modifyResponse,
		ErrorHandler:   f.errorHandler,
		ErrorLog:       slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
	}
	return f
}

// CloseIdle closes idle member connections (at shutdown).
func (f *Forwarder) CloseIdle() { f.upstreams.closeIdle() }

// transportFor returns the member transport for a route's timeouts.
func (f *Forwarder) transportFor(r *Route) *http.Transport {
	return f.upstreams.get(upstreamKey{connect: r.ConnectTimeout, idle: r.MemberTimeout}, nil)
}

// RetainTLS drops member transports whose TLS settings (by key) no pool
// uses any more. Call it after each reload with the keys in use.
func (f *Forwarder) RetainTLS(keys map[string]bool) { f.upstreams.retainTLS(keys) }

// exchange is one request's forwarding state, reached from the outbound
// request's context.
type exchange struct {
	route  *routeState
	pool   *Pool
	member *Member // changes when a refused connection is retried elsewhere
	ci     *connInfo
	body   *clientBody // the client's request body, nil without one
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

// forward proxies one request to member m and returns when the response is
// complete, with the request body it read (nil when there was none).
func (f *Forwarder) forward(w http.ResponseWriter, r *http.Request, st *routeState, pool *Pool, m *Member, ci *connInfo) *clientBody {
	x := &exchange{route: st, pool: pool, member: m, ci: ci}
	m.state.active.Add(1)
	defer func() { x.member.state.active.Add(-1) }()
	out := r.WithContext(context.WithValue(r.Context(), exchangeKey{}, x))
	var body *clientBody
	if r.Body != nil && r.Body != http.NoBody {
		body = &clientBody{ReadCloser: r.Body, rc: http.NewResponseController(w), dl: deadline{timeout: st.ClientTimeout}}
		x.body = body
		out.Body = body
	}
	f.rp.ServeHTTP(w, out)
	return body
}

func (f *Forwarder) rewrite(pr *httputil.ProxyRequest) {
	x := exchangeFrom(pr.In.Context())
	pr.Out.URL.Scheme = "http"
	if x.pool.tls != nil {
		pr.Out.URL.Scheme = "https"
	}
	pr.Out.URL.Host = x.member.Addr
	x.route.Headers.apply(pr.Out.Header, pr.In.Header, x.ci)
	if x.pool.persistence == PersistHTTPCookie {
		stripPersistCookie(pr.Out.Header)
	}
}

func (f *Forwarder) modifyResponse(resp *http.Response) error {
	x := exchangeFrom(resp.Request.Context())
	if x.route.Headers.HSTS != "" && x.ci.tls != nil {
		resp.Header.Set("Strict-Transport-Security", x.route.Headers.HSTS)
	}
	x.pool.persistResponse(resp, x.member)
	if x.member.state.answered(resp.StatusCode) {
		f.log.Warn("member held out for a burst of 5xx answers", "pool", x.pool.Name, "member", x.member.Name, "for", passiveHold)
	}
	x.member.requests[classIndex(resp.StatusCode)].Inc()
	return nil
}

// errorHandler answers when no response came from the member. The client
// sees the status and a short reason; the log gets the cause.
func (f *Forwarder) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	x := exchangeFrom(r.Context())
	x.member.requests[0].Inc()
	var status int
	var reason, msg string
	switch {
	case r.Context().Err() != nil && errors.Is(err, context.Canceled):
		// The client went away; nobody is left to answer.
		x.member.errors("client_gone").Inc()
		f.log.Debug("client closed the request", "listener", x.route.Listener, "member", x.member.Name)
		return
	case isDialError(err):
		status, reason, msg = http.StatusBadGateway, "connect", "the backend member could not be reached"
	case isTimeout(err):
		status, reason, msg = http.StatusGatewayTimeout, "timeout", "the backend member did not answer in time"
	default:
		status, reason, msg = http.StatusBadGateway, "protocol", "the backend member failed to answer"
	}
	x.member.errors(reason).Inc()
	if reason == "connect" && x.member.state.connectFailed() {
		f.log.Warn("member held out after repeated connect failures", "pool", x.pool.Name, "member", x.member.Name, "for", passiveHold)
	}
	f.log.Warn("member failed", "listener", x.route.Listener, "member", x.member.Name, "addr", x.member.Addr, "reason", reason, "err", err)
	writeError(w, status, msg)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// writeError writes a short plain-text error page.
func writeError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(http.StatusText(status) + ": " + msg + "\n"))
}

type bufferPool struct{ p *sync.Pool }

func (b bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b bufferPool) Put(v []byte) { b.p.Put(&v) }
