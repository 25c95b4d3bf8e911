package proxy

import (
	"errors"
	"log/slog"
	"net"
	"net/http"

	"github.com/terminator-proxy/terminator/proxy/lb"
	"github.com/terminator-proxy/terminator/proxy/upstream"
)

// Forwarder sends requests to pool members over HTTP/1.1 with keep-alive
// connection reuse per member. One Forwarder serves every listener of the
// process; it is safe for concurrent use.
type Forwarder struct {
	upstreams *upstream.Registry[upstream.Key, *upstream.Pool]
	h2        *upstream.Registry[upstream.H2Key, *upstream.H2Pool] // members spoken to in HTTP/2
	log       *slog.Logger
	dial      DialFunc
}

// ForwarderOptions configure NewForwarder. The zero value is usable.
type ForwarderOptions struct {
	Logger *slog.Logger
	// MaxIdlePerMember caps idle keep-alive connections kept per member
	// (default 1024; Go's default of 2 churns connections under load).
	MaxIdlePerMember int
	// Dial opens every member connection (HTTP pools and layer-4
	// listeners) with d's settings; nil is d.DialContext. The amphora
	// agent dials from its network namespace with it.
	Dial DialFunc
}

// DialFunc dials network/addr with d's timeouts and keep-alives.
type DialFunc = upstream.DialFunc

// NewForwarder returns a Forwarder.
func NewForwarder(o ForwarderOptions) *Forwarder {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Dial == nil {
		o.Dial = upstream.PlainDial
	}
	if o.MaxIdlePerMember <= 0 {
		o.MaxIdlePerMember = 1024
	}
	return &Forwarder{log: o.Logger, dial: o.Dial,
		upstreams: upstream.NewPools(o.Dial, o.MaxIdlePerMember),
		h2:        upstream.NewH2Pools(o.Dial, o.MaxIdlePerMember, maxResponseHead),
	}
}

// CloseIdle closes idle member connections (at shutdown).
func (f *Forwarder) CloseIdle() {
	f.upstreams.CloseIdle()
	f.h2.CloseIdle()
}

// transportFor returns the member upstream for a route's timeouts.
func (f *Forwarder) transportFor(r *Route) *upstream.Pool {
	return f.upstreams.Get(upstream.Key{Connect: r.ConnectTimeout, Idle: r.MemberTimeout}, nil)
}

// RetainTLS drops member upstreams whose TLS settings (by key) no pool
// uses any more. Call it after each reload with the keys in use.
func (f *Forwarder) RetainTLS(keys map[string]bool) {
	f.upstreams.RetainTLS(keys)
	f.h2.RetainTLS(keys)
}

// exchange is one request's forwarding state.
type exchange struct {
	route  *routeState
	pool   *lb.Pool
	member *lb.Member // changes when a refused connection is retried elsewhere
	ci     *connInfo
	body   *clientBody // the client's request body, nil without one
}

// forward proxies one request to member m and returns when the response is
// complete, with the request body it read (nil when there was none).
// aborted reports a response cut short after its head was sent: the caller
// must then abort the client connection (panic with http.ErrAbortHandler)
// so that the client cannot take the truncated response for a whole one.
func (f *Forwarder) forward(w http.ResponseWriter, r *http.Request, st *routeState, pool *lb.Pool, m *lb.Member, ci *connInfo) (body *clientBody, aborted bool) {
	x := &exchange{route: st, pool: pool, member: m, ci: ci}
	m.State().AddActive(1)
	defer func() { x.member.State().AddActive(-1) }()
	if r.Body != nil && r.Body != http.NoBody {
		body = &clientBody{ReadCloser: r.Body, rc: deadlinesOf(w), dl: deadline{timeout: st.ClientTimeout}}
		x.body = body
	}
	if r.Method == http.MethodConnect {
		writeError(w, http.StatusMethodNotAllowed, "CONNECT is not supported")
		return body, false
	}
	if p, ok := st.poolH2[pool]; ok {
		scheme := "https"
		if pool.TLS() == nil {
			scheme = "http"
		}
		return body, f.exchangeH2(w, r, x, p, scheme)
	}
	up := st.transport
	if u, ok := st.poolTransports[pool]; ok {
		up = u
	}
	return body, f.exchange(w, r, x, up)
}

// errorStatus maps a failure to reach a member to the client's status
// and the reason recorded in metrics.
func errorStatus(err error) (status int, reason, msg string) {
	switch {
	case isDialError(err):
		return http.StatusBadGateway, "connect", "the backend member could not be reached"
	case isTimeout(err):
		return http.StatusGatewayTimeout, "timeout", "the backend member did not answer in time"
	}
	return http.StatusBadGateway, "protocol", "the backend member failed to answer"
}

// fail answers when no response came from the member. The client sees the
// status and a short reason; the log gets the cause.
func (f *Forwarder) fail(w http.ResponseWriter, r *http.Request, x *exchange, err error) {
	x.member.Requests(0).Inc()
	if r.Context().Err() != nil {
		// The client went away; nobody is left to answer.
		x.member.Errors("client_gone").Inc()
		f.log.Debug("client closed the request", "listener", x.route.Listener, "member", x.member.Name)
		return
	}
	status, reason, msg := errorStatus(err)
	var cbe *clientBodyError
	if errors.As(err, &cbe) {
		status, reason, msg = http.StatusBadRequest, "client_body", "the request body could not be read"
	}
	x.member.Errors(reason).Inc()
	if reason == "connect" && x.member.State().ConnectFailed() {
		f.log.Warn("member held out after repeated connect failures", "pool", x.pool.Name, "member", x.member.Name, "for", lb.PassiveHold)
	}
	f.log.Warn("member failed", "listener", x.route.Listener, "member", x.member.Name, "addr", x.member.Addr, "reason", reason, "err", err)
	if isGRPC(r) {
		// A gRPC client cannot read an HTTP error page: the status goes in
		// a trailers-only answer (gRPC's mapping of 400 and 502–504).
		code := "14" // UNAVAILABLE
		if status == http.StatusBadRequest {
			code = "13" // INTERNAL
		}
		writeGRPCStatus(w, code, msg)
		return
	}
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
