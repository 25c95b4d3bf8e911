package proxy

import (
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/terminator-proxy/terminator/metrics"
	"github.com/terminator-proxy/terminator/proxy/h2client"
	"github.com/terminator-proxy/terminator/proxy/httpwire"
	"github.com/terminator-proxy/terminator/proxy/lb"
	"github.com/terminator-proxy/terminator/proxy/upstream"
)

// exchangeH2 sends r to x.member over p and relays the response, trailers
// included. A refused connection is offered to other members as the
// HTTP/1.1 exchange does; a request the member did not process (GOAWAY,
// REFUSED_STREAM) is sent again on another connection. It reports whether
// the response had to be cut short after its head.
func (f *Forwarder) exchangeH2(w http.ResponseWriter, r *http.Request, x *exchange, p *upstream.H2Pool, scheme string) (aborted bool) {
	out := &h2client.Request{
		Method: r.Method, Scheme: scheme, Authority: r.Host, Path: originForm(r),
		Header: outboundHeader(r, x), ContentLength: r.ContentLength,
		Silence: x.route.MemberTimeout, // timeout_member_data
	}
	if out.Authority == "" { // an HTTP/1.0 client without Host: HTTP/2 needs one
		out.Authority = x.member.Addr
	}
	if x.body != nil {
		out.Body, out.BodyComplete, out.Abort = x.body, x.body.complete, x.body.abort
		out.Trailer = func() http.Header { return r.Trailer }
		if len(r.Trailer) > 0 { // declared, as members such as net/http's keep only declared trailers
			out.Header["Trailer"] = []string{strings.Join(slices.Sorted(maps.Keys(r.Trailer)), ", ")}
		}
	} else {
		out.ContentLength = 0
	}
	if httpwire.HasToken(r.Header, "Te", "trailers") {
		out.Header["Te"] = []string{"trailers"} // gRPC needs it; the only TE HTTP/2 allows
	}
	ctx := r.Context() // a client's reset ends it, which resets the member's stream
	start := time.Now()
	var tried []*lb.Member
	for unprocessed := 0; ; {
		c, h1, err := p.Get(ctx, x.member.Addr)
		if h1 {
			return f.exchange(w, r, x, p.H1())
		}
		var resp *h2client.Response
		if err == nil {
			resp, err = c.RoundTrip(ctx, out)
		}
		if err == nil {
			return f.relayH2(w, r, x, resp)
		}
		if errors.Is(err, h2client.ErrUnprocessed) && bodyUnsent(x) && unprocessed < maxRetries && ctx.Err() == nil {
			unprocessed++
			continue
		}
		if x.retryElsewhere(ctx, err, &tried) {
			continue
		}
		if isGRPC(r) && ctx.Err() == nil && grpcDeadlinePassed(r, start) {
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
func (f *Forwarder) relayH2(w http.ResponseWriter, r *http.Request, x *exchange, resp *h2client.Response) (aborted bool) {
	defer resp.Body.Close()
	out := w.Header()
	copyEndToEnd(out, resp.Header)
	for _, line := range resp.Header["Trailer"] { // hop-by-hop: declared again for the client
		for name := range strings.SplitSeq(line, ",") {
			if name = strings.Trim(name, " \t"); name != "" {
				out.Add("Trailer", http.CanonicalHeaderKey(name))
			}
		}
	}
	if len(out["Trailer"]) > 0 {
		out.Del("Content-Length") // an HTTP/1.1 client gets trailers only after a chunked body
	}
	x.member.Requests(metrics.ClassIndex(resp.Status)).Inc()
	f.finishHead(w, r, x, resp.Status)
	w.WriteHeader(resp.Status)
	flush := http.NewResponseController(w).Flush
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	for {
		n, rerr := resp.Body.Read(*bp)
		if n > 0 {
			if _, err := w.Write((*bp)[:n]); err != nil {
				x.member.Errors("client_gone").Inc()
				return true
			}
			if !resp.Body.Ready() { // more is coming later: send what came (gRPC streams)
				_ = flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			var silent h2client.SilenceError
			switch {
			case errors.As(rerr, &silent):
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
	if resp.Body.Sending() {
		// The member answered before taking the whole request: the
		// answer goes out now, before Close waits for the client's
		// pending body read.
		_ = flush()
	}
	if ts := trailerSetter(w); ts != nil {
		ts.SetTrailers(resp.Trailer)
		return false
	}
	for k, vs := range resp.Trailer {
		out[http.TrailerPrefix+k] = vs
	}
	return false
}

// trailerSetter finds, under w's wrappers, a writer that takes trailers
// as a map (the HTTP/2 server's); nil if there is none.
func trailerSetter(w http.ResponseWriter) interface{ SetTrailers(http.Header) } {
	for {
		if ts, ok := w.(interface{ SetTrailers(http.Header) }); ok {
			return ts
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
}
