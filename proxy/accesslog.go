package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/terminator-proxy/terminator/accesslog"
	"github.com/terminator-proxy/terminator/proxy/lb"
)

// requestIDHeader carries the request id to the member and into the log.
const requestIDHeader = "X-Request-Id"

// newRequestID is 16 random bytes in hex.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// accessEntry is what the access log records of a finished request.
func accessEntry(st *routeState, r *http.Request, rec *recorder, m *lb.Member, ci *connInfo, in int64, start time.Time, elapsed time.Duration) *accesslog.Entry {
	e := &accesslog.Entry{
		Time: start, Listener: st.Listener, ClientIP: ci.clientIP, Method: r.Method, Host: r.Host,
		URI: r.RequestURI, Proto: r.Proto, Status: rec.status, BytesIn: in, BytesOut: rec.n,
		Duration: elapsed, Member: "-", RequestID: r.Header.Get(requestIDHeader), TerminationState: "--",
	}
	if ci.remote != nil {
		if _, port, err := net.SplitHostPort(ci.remote.String()); err == nil {
			e.ClientPort, _ = strconv.Atoi(port)
		}
	}
	if m != nil {
		e.Member, e.Pool = m.Addr, m.PoolName()
	}
	if cs := ci.tls; cs != nil && len(cs.PeerCertificates) > 0 {
		e.ClientVerify = "0"
		e.ClientDN = cs.PeerCertificates[0].Subject.String()
	}
	if rec.status == 0 {
		e.TerminationState = "CD" // the client went away
	}
	return e
}
