package h2server

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/terminator-proxy/terminator/proxy/httpwire"
)

// headerBlock collects the fields of the header block being read. Fields
// past max bytes (RFC 9113 §6.5.2's size: name, value and 32 each) are
// decoded, to keep the hpack table in step, but not kept.
type headerBlock struct {
	max       int
	size      int
	tooLarge  bool
	fields    []hpack.HeaderField
	streamID  uint32
	endStream bool
	selfDep   bool // a priority on itself: a stream error once decoded
	frames    int
}

func (b *headerBlock) reset(id uint32, end bool) {
	b.size, b.tooLarge, b.fields, b.streamID, b.endStream, b.frames = 0, false, b.fields[:0], id, end, 0
}

func (b *headerBlock) emit(hf hpack.HeaderField) {
	if b.tooLarge {
		return
	}
	b.size += int(hf.Size())
	if b.size > b.max {
		b.tooLarge, b.fields = true, b.fields[:0]
		return
	}
	b.fields = append(b.fields, hf)
}

func (c *Conn) processHeaders(f *http2.HeadersFrame) error {
	if f.StreamID%2 == 0 {
		return connError{http2.ErrCodeProtocol, "HEADERS on an even stream ID"}
	}
	c.blk.reset(f.StreamID, f.StreamEnded())
	c.blk.selfDep = f.HasPriority() && f.Priority.StreamDep == f.StreamID
	if _, err := c.hdec.Write(f.HeaderBlockFragment()); err != nil {
		return connError{http2.ErrCodeCompression, err.Error()}
	}
	if !f.HeadersEnded() {
		return nil
	}
	return c.endBlock()
}

func (c *Conn) processContinuation(f *http2.ContinuationFrame) error {
	if c.blk.frames++; c.blk.frames > maxContinuations {
		return connError{http2.ErrCodeEnhanceYourCalm, "header block in too many CONTINUATION frames"}
	}
	if _, err := c.hdec.Write(f.HeaderBlockFragment()); err != nil {
		return connError{http2.ErrCodeCompression, err.Error()}
	}
	if !f.HeadersEnded() {
		return nil
	}
	return c.endBlock()
}

// endBlock acts on a complete header block: a new stream, a stream's
// trailers, or an error.
func (c *Conn) endBlock() error {
	if err := c.hdec.Close(); err != nil {
		return connError{http2.ErrCodeCompression, err.Error()}
	}
	b := &c.blk
	id := b.streamID
	c.mu.Lock()
	if s := c.streams[id]; s != nil {
		c.mu.Unlock()
		return c.processTrailers(s)
	}
	if id <= c.maxClientID {
		c.mu.Unlock()
		return connError{http2.ErrCodeStreamClosed, "HEADERS on a closed stream"}
	}
	c.maxClientID = id
	switch {
	case b.selfDep:
		c.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol, Cause: malformed("stream depends on itself")}
	case c.goingAway:
		c.mu.Unlock()
		return nil // past GOAWAY: not taken, the client may send it again
	case len(c.streams) >= int(c.o.MaxConcurrentStreams):
		c.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	case c.handlers >= 2*int(c.o.MaxConcurrentStreams):
		c.mu.Unlock()
		return connError{http2.ErrCodeEnhanceYourCalm, "too many handlers still running for streams the client reset"}
	}
	c.mu.Unlock()
	c.budget.credit()
	s := c.newStream(id)
	var r *http.Request
	if !b.tooLarge {
		var err error
		if r, err = c.newRequest(b, s.ctx); err != nil {
			s.cancel()
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol, Cause: err}
		}
	}
	return c.startStream(s, r, b.endStream)
}

// malformed is a request RFC 9113 §8.1.1 calls malformed.
type malformed string

func (m malformed) Error() string { return "malformed request: " + string(m) }

// newRequest checks the block's fields as a request head and builds its
// request with context ctx (body and stream are set by startStream).
func (c *Conn) newRequest(b *headerBlock, ctx context.Context) (*http.Request, error) {
	var method, scheme, path, authority string
	var seen [4]bool
	h := make(http.Header, len(b.fields))
	regular := false
	for _, hf := range b.fields {
		if strings.HasPrefix(hf.Name, ":") {
			if regular {
				return nil, malformed("pseudo-header field after a regular one")
			}
			var i int
			switch hf.Name {
			case ":method":
				i, method = 0, hf.Value
			case ":scheme":
				i, scheme = 1, hf.Value
			case ":path":
				i, path = 2, hf.Value
			case ":authority":
				i, authority = 3, hf.Value
			default:
				return nil, malformed("unknown pseudo-header field " + hf.Name)
			}
			if seen[i] {
				return nil, malformed("repeated " + hf.Name)
			}
			seen[i] = true
			continue
		}
		regular = true
		if err := checkField(hf, false); err != nil {
			return nil, err
		}
		k := canonicalName(hf.Name)
		h[k] = append(h[k], hf.Value)
	}
	if method == "" {
		return nil, malformed("missing :method")
	}
	if method == http.MethodConnect {
		if seen[1] || seen[2] || authority == "" {
			return nil, malformed("CONNECT with :scheme or :path, or without :authority")
		}
	} else if scheme == "" || path == "" {
		return nil, malformed("missing :scheme or :path")
	}
	if hosts := h["Host"]; len(hosts) > 0 {
		if len(hosts) > 1 || (authority != "" && hosts[0] != authority) {
			return nil, malformed("Host does not match :authority")
		}
		authority = hosts[0]
		delete(h, "Host")
	}
	if cookies := h["Cookie"]; len(cookies) > 1 {
		h["Cookie"] = []string{strings.Join(cookies, "; ")} // RFC 9113 §8.2.3
	}
	r := (&http.Request{Method: method, Proto: "HTTP/2.0", ProtoMajor: 2, Header: h, Host: authority,
		RequestURI: path, RemoteAddr: c.remote, TLS: c.tlsState, ContentLength: -1}).WithContext(ctx)
	if cl := h["Content-Length"]; len(cl) > 0 {
		for _, v := range cl[1:] {
			if v != cl[0] {
				return nil, malformed("differing Content-Length values")
			}
		}
		n, err := httpwire.ParseLength(cl[0]) // the HTTP/1.x path's rule
		if err != nil {
			return nil, malformed("invalid Content-Length")
		}
		r.ContentLength = n
		h["Content-Length"] = cl[:1]
	}
	switch {
	case method == http.MethodConnect:
		r.URL = &url.URL{Host: authority}
	case path == "*":
		r.URL = &url.URL{Path: "*"}
	default:
		u, err := url.ParseRequestURI(path)
		if err != nil {
			return nil, malformed("invalid :path")
		}
		r.URL = u
	}
	if decl := h["Trailer"]; len(decl) > 0 {
		r.Trailer = http.Header{}
		for _, line := range decl {
			for name := range strings.SplitSeq(line, ",") {
				if name = http.CanonicalHeaderKey(strings.TrimSpace(name)); name != "" && httpguts.ValidTrailerHeader(name) {
					r.Trailer[name] = nil
				}
			}
		}
	}
	return r, nil
}

// checkField applies RFC 9113 §8.2 to a regular field: lower-case token
// name, valid value, no connection-specific field, TE only "trailers".
func checkField(hf hpack.HeaderField, trailer bool) error {
	if hf.Name == "" {
		return malformed("empty field name")
	}
	for i := 0; i < len(hf.Name); i++ {
		ch := hf.Name[i]
		if ('A' <= ch && ch <= 'Z') || !httpguts.IsTokenRune(rune(ch)) {
			return malformed("invalid field name")
		}
	}
	if !httpguts.ValidHeaderFieldValue(hf.Value) {
		return malformed("invalid value of " + hf.Name)
	}
	switch hf.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return malformed("connection-specific field " + hf.Name)
	case "te":
		if hf.Value != "trailers" || trailer {
			return malformed("TE other than trailers")
		}
	}
	return nil
}

// processTrailers ends stream s with the trailer block just read.
func (c *Conn) processTrailers(s *stream) error {
	b := &c.blk
	c.mu.Lock()
	done := s.remoteDone
	c.mu.Unlock()
	if done {
		return http2.StreamError{StreamID: s.id, Code: http2.ErrCodeStreamClosed}
	}
	if !b.endStream {
		return http2.StreamError{StreamID: s.id, Code: http2.ErrCodeProtocol, Cause: malformed("second HEADERS without END_STREAM")}
	}
	if b.tooLarge {
		return http2.StreamError{StreamID: s.id, Code: http2.ErrCodeProtocol, Cause: malformed("trailers too large")}
	}
	for _, hf := range b.fields {
		if strings.HasPrefix(hf.Name, ":") {
			return http2.StreamError{StreamID: s.id, Code: http2.ErrCodeProtocol, Cause: malformed("pseudo-header field in trailers")}
		}
		if err := checkField(hf, true); err != nil {
			return http2.StreamError{StreamID: s.id, Code: http2.ErrCodeProtocol, Cause: err}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.trailer != nil {
		// Handed to the request at the body's EOF, in the reading
		// goroutine: the handler may be reading r.Trailer's keys now.
		s.trailerFields = append([]hpack.HeaderField(nil), b.fields...)
	}
	return c.endRemoteLocked(s)
}

// commonCanonical maps the lower-case names most requests carry to their
// canonical form without allocating.
var commonCanonical = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"accept", "accept-encoding", "accept-language", "authorization", "cache-control",
		"content-length", "content-type", "cookie", "host", "if-modified-since", "if-none-match", "origin",
		"referer", "user-agent", "te", "trailer", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding",
		"x-forwarded-for", "x-forwarded-proto", "x-request-id", "upgrade-insecure-requests", "pragma",
		"sec-fetch-dest", "sec-fetch-mode", "sec-fetch-site", "priority", "range", "if-match"} {
		m[k] = http.CanonicalHeaderKey(k)
	}
	return m
}()

func canonicalName(n string) string {
	if v, ok := commonCanonical[n]; ok {
		return v
	}
	return http.CanonicalHeaderKey(n)
}
