package h2client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// peer is a scripted member speaking raw frames, for what no real server
// would send.
type peer struct {
	t   *testing.T
	nc  net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	hb  bytes.Buffer
}

// newPeer connects a Conn with options o to a scripted member that has
// read the preface and sent its SETTINGS with settings.
func newPeer(t *testing.T, o Options, settings ...http2.Setting) (*Conn, *peer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c := dial(t, ln.Addr().String(), o)
	sc := <-accepted
	p := &peer{t: t, nc: sc}
	p.fr = http2.NewFramer(sc, bufio.NewReader(sc))
	p.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	p.enc = hpack.NewEncoder(&p.hb)
	_ = sc.SetDeadline(time.Now().Add(10 * time.Second))
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(sc, preface); err != nil || string(preface) != http2.ClientPreface {
		t.Fatalf("preface %q: %v", preface, err)
	}
	if err := p.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		sc.Close()
	})
	return c, p
}

// until reads frames until match returns true, failing the test at the
// connection's end.
func (p *peer) until(what string, match func(http2.Frame) bool) http2.Frame {
	p.t.Helper()
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			p.t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(f) {
			return f
		}
	}
}

func (p *peer) headers(id uint32, end bool, fields ...string) {
	p.hb.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		_ = p.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	if err := p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.hb.Bytes(), EndStream: end, EndHeaders: true}); err != nil {
		p.t.Fatal(err)
	}
}

// request starts a GET on c and returns the stream ID the peer saw with
// a channel of the outcome.
type outcome struct {
	resp *Response
	err  error
}

func (p *peer) request(c *Conn) (uint32, chan outcome) {
	p.t.Helper()
	done := make(chan outcome, 1)
	if !c.Reserve() {
		p.t.Fatal("Reserve refused")
	}
	go func() {
		resp, err := c.RoundTrip(context.Background(), &Request{Method: "GET", Scheme: "http", Authority: "m", Path: "/"})
		done <- outcome{resp, err}
	}()
	f := p.until("the request's HEADERS", func(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok })
	return f.Header().StreamID, done
}

func wait(t *testing.T, done chan outcome) outcome {
	t.Helper()
	select {
	case o := <-done:
		return o
	case <-time.After(5 * time.Second):
		t.Fatal("RoundTrip did not return")
	}
	return outcome{}
}

func isReset(id uint32, code http2.ErrCode) func(http2.Frame) bool {
	return func(f http2.Frame) bool {
		r, ok := f.(*http2.RSTStreamFrame)
		return ok && r.StreamID == id && r.ErrCode == code
	}
}

func isGoAway(code http2.ErrCode) func(http2.Frame) bool {
	return func(f http2.Frame) bool {
		g, ok := f.(*http2.GoAwayFrame)
		return ok && g.ErrCode == code
	}
}

// TestMalformedResponsesResetTheStream: each response rule broken by a
// member fails that request with an error naming the rule, resets the
// stream with the code RFC 9113 gives, and leaves the connection serving.
func TestMalformedResponsesResetTheStream(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		code       http2.ErrCode
		send       func(p *peer, id uint32)
		inBody     bool // the head is fine; reading the body fails
	}{
		{"connection-specific field", "connection-specific", http2.ErrCodeProtocol, func(p *peer, id uint32) {
			p.headers(id, true, ":status", "200", "connection", "close")
		}, false},
		{"request pseudo-header", "pseudo", http2.ErrCodeProtocol, func(p *peer, id uint32) {
			p.headers(id, true, ":status", "200", ":path", "/")
		}, false},
		{"bad status", ":status", http2.ErrCodeProtocol, func(p *peer, id uint32) {
			p.headers(id, true, ":status", "20x")
		}, false},
		{"101 over HTTP/2", "status 101", http2.ErrCodeProtocol, func(p *peer, id uint32) {
			p.headers(id, true, ":status", "101")
		}, false},
		{"DATA before the head", "DATA before", http2.ErrCodeProtocol, func(p *peer, id uint32) {
			_ = p.fr.WriteData(id, true, []byte("x"))
		}, false},
		{"content-length short", "content-length of 10", http2.ErrCodeProtocol, func(p *peer, id uint32) {
			p.headers(id, false, ":status", "200", "content-length", "10")
			_ = p.fr.WriteData(id, true, []byte("12345"))
		}, true},
		{"content-length exceeded", "content-length of 2", http2.ErrCodeProtocol, func(p *peer, id uint32) {
			p.headers(id, false, ":status", "200", "content-length", "2")
			_ = p.fr.WriteData(id, true, []byte("12345"))
		}, true},
		{"trailers that do not end the stream", "does not end the stream", http2.ErrCodeProtocol, func(p *peer, id uint32) {
			p.headers(id, false, ":status", "200")
			p.headers(id, false, "grpc-status", "0")
		}, true},
		{"DATA beyond the stream window", "window", http2.ErrCodeFlowControl, func(p *peer, id uint32) {
			p.headers(id, false, ":status", "200")
			chunk := make([]byte, 16<<10)
			for range streamWindow/len(chunk) + 1 {
				_ = p.fr.WriteData(id, false, chunk)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, p := newPeer(t, Options{}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
			id, done := p.request(c)
			tc.send(p, id)
			// The reset comes from the read loop, before anything is read
			// (reading would return window the test means to exceed).
			p.until("RST_STREAM "+tc.code.String(), isReset(id, tc.code))
			o := wait(t, done)
			err := o.err
			if tc.inBody {
				if err != nil {
					t.Fatalf("head: %v", err)
				}
				_, err = io.ReadAll(o.resp.Body)
				o.resp.Body.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one naming %q", err, tc.want)
			}
			// The connection still serves.
			id2, done2 := p.request(c)
			p.headers(id2, true, ":status", "204")
			if o := wait(t, done2); o.err != nil || o.resp.Status != 204 {
				t.Fatalf("next request: %v", o.err)
			}
		})
	}
}

// TestProtocolViolationsCloseTheConnection: what breaks the connection as
// a whole gets GOAWAY with the right code, and every stream fails.
func TestProtocolViolationsCloseTheConnection(t *testing.T) {
	for _, tc := range []struct {
		name string
		code http2.ErrCode
		send func(p *peer, id uint32)
	}{
		{"PUSH_PROMISE", http2.ErrCodeProtocol, func(p *peer, id uint32) {
			p.hb.Reset()
			_ = p.enc.WriteField(hpack.HeaderField{Name: ":method", Value: "GET"})
			_ = p.fr.WritePushPromise(http2.PushPromiseParam{StreamID: id, PromiseID: 2, BlockFragment: p.hb.Bytes(), EndHeaders: true})
		}},
		{"HEADERS on a stream never opened", http2.ErrCodeProtocol, func(p *peer, id uint32) {
			p.headers(id+2, true, ":status", "200")
		}},
		{"window overflow", http2.ErrCodeFlowControl, func(p *peer, id uint32) {
			_ = p.fr.WriteWindowUpdate(0, 1<<31-1)
		}},
		{"oversized frame", http2.ErrCodeFrameSize, func(p *peer, id uint32) {
			// The header alone: a payload the client never reads would
			// make its close a TCP reset that can overtake the GOAWAY.
			n := maxReadFrame + 1
			_, _ = p.nc.Write([]byte{byte(n >> 16), byte(n >> 8), byte(n), byte(http2.FrameData), 0, 0, 0, 0, byte(id)})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, p := newPeer(t, Options{}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
			id, done := p.request(c)
			tc.send(p, id)
			p.until("GOAWAY "+tc.code.String(), isGoAway(tc.code))
			if o := wait(t, done); o.err == nil {
				// The head may have come first; the body must fail then.
				if _, err := io.ReadAll(o.resp.Body); err == nil {
					t.Fatal("the stream completed on a connection the member broke")
				}
				o.resp.Body.Close()
			}
			if c.Reserve() {
				t.Fatal("the broken connection takes new streams")
			}
		})
	}
}

// TestConnectionWindow: DATA beyond the connection's window, on streams
// each within its own, closes the connection with FLOW_CONTROL_ERROR.
func TestConnectionWindow(t *testing.T) {
	c, p := newPeer(t, Options{})
	chunk := make([]byte, 16<<10)
	var dones []chan outcome
	for i := range connWindow/streamWindow + 1 {
		id, done := p.request(c)
		dones = append(dones, done)
		p.headers(id, false, ":status", "200")
		n := streamWindow / len(chunk)
		if i == connWindow/streamWindow {
			n = 1 // the connection's window is used up by now
		}
		for range n {
			_ = p.fr.WriteData(id, false, chunk)
		}
	}
	p.until("GOAWAY FLOW_CONTROL_ERROR", isGoAway(http2.ErrCodeFlowControl))
	for _, done := range dones {
		if o := wait(t, done); o.err == nil {
			if _, err := io.ReadAll(o.resp.Body); err == nil {
				t.Fatal("a stream completed on the closed connection")
			}
			o.resp.Body.Close()
		}
	}
}

// TestHeaderListLimit: a response head beyond MaxHeaderListSize fails
// its request; the hpack state stays in step (the next request works).
// (A single field longer than the whole limit is a COMPRESSION_ERROR for
// the connection, as x/net's Framer decides.)
func TestHeaderListLimit(t *testing.T) {
	c, p := newPeer(t, Options{MaxHeaderListSize: 1024})
	id, done := p.request(c)
	var fields []string
	for i := range 30 {
		fields = append(fields, fmt.Sprintf("x-field-%d", i), "some value")
	}
	p.headers(id, true, append([]string{":status", "200"}, fields...)...)
	if o := wait(t, done); o.err == nil || !strings.Contains(o.err.Error(), "larger than 1024") {
		t.Fatalf("err %v", o.err)
	}
	id2, done2 := p.request(c)
	p.headers(id2, true, ":status", "200", "x-small", "b")
	if o := wait(t, done2); o.err != nil || o.resp.Header.Get("X-Small") != "b" {
		t.Fatalf("next request: %+v", o)
	}
}

// TestUnprocessedRequests: a GOAWAY below a stream, or REFUSED_STREAM,
// fails the request with ErrUnprocessed (safe to send again); a GOAWAY
// stops new streams.
func TestUnprocessedRequests(t *testing.T) {
	c, p := newPeer(t, Options{})
	id, done := p.request(c)
	_ = p.fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
	if o := wait(t, done); !errors.Is(o.err, ErrUnprocessed) {
		t.Fatalf("REFUSED_STREAM: %v", o.err)
	}
	id, done = p.request(c)
	_ = p.fr.WriteGoAway(id-2, http2.ErrCodeNo, nil)
	if o := wait(t, done); !errors.Is(o.err, ErrUnprocessed) {
		t.Fatalf("GOAWAY below the stream: %v", o.err)
	}
	if c.Reserve() {
		t.Fatal("a connection going away takes new streams")
	}
}

// TestMaxConcurrentStreams: Reserve honours the member's limit.
func TestMaxConcurrentStreams(t *testing.T) {
	c, p := newPeer(t, Options{}, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1})
	p.until("the SETTINGS ACK", func(f http2.Frame) bool { s, ok := f.(*http2.SettingsFrame); return ok && s.IsAck() })
	id, done := p.request(c)
	if c.Reserve() {
		t.Fatal("a second stream beyond SETTINGS_MAX_CONCURRENT_STREAMS 1")
	}
	p.headers(id, true, ":status", "200")
	o := wait(t, done)
	o.resp.Body.Close()
	if !c.Reserve() {
		t.Fatal("no stream once the first is done")
	}
}

// TestSilentMemberIsPingedThenClosed and the idle timeout.
func TestSilentMemberIsPingedThenClosed(t *testing.T) {
	c, p := newPeer(t, Options{PingAfter: 50 * time.Millisecond, PingTimeout: 100 * time.Millisecond})
	p.until("a PING", func(f http2.Frame) bool { pf, ok := f.(*http2.PingFrame); return ok && !pf.IsAck() })
	deadline := time.Now().Add(5 * time.Second)
	for !closed(c) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !closed(c) {
		t.Fatal("a member that does not answer PING keeps its connection")
	}

	c, p = newPeer(t, Options{IdleTimeout: 100 * time.Millisecond})
	id, done := p.request(c)
	p.headers(id, true, ":status", "200")
	wait(t, done).resp.Body.Close()
	deadline = time.Now().Add(5 * time.Second)
	for !closed(c) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !closed(c) {
		t.Fatal("an idle connection outlived IdleTimeout")
	}
}

// TestAnsweredPingKeepsTheConnection: a member answering pings keeps a
// long-silent stream's connection.
func TestAnsweredPingKeepsTheConnection(t *testing.T) {
	c, p := newPeer(t, Options{PingAfter: 30 * time.Millisecond, PingTimeout: 60 * time.Millisecond})
	id, done := p.request(c)
	for range 5 {
		f := p.until("a PING", func(f http2.Frame) bool { pf, ok := f.(*http2.PingFrame); return ok && !pf.IsAck() })
		if err := p.fr.WritePing(true, f.(*http2.PingFrame).Data); err != nil {
			t.Fatal(err)
		}
	}
	if closed(c) {
		t.Fatalf("closed though every PING was answered: %v", c.err)
	}
	p.headers(id, true, ":status", "200")
	if o := wait(t, done); o.err != nil {
		t.Fatal(o.err)
	}
}

// TestCompleteResponseThenReset: a reset after a complete response (a
// gRPC server's status before the request ended) leaves the response
// whole.
func TestCompleteResponseThenReset(t *testing.T) {
	c, p := newPeer(t, Options{})
	if !c.Reserve() {
		t.Fatal("Reserve")
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	done := make(chan outcome, 1)
	go func() {
		resp, err := c.RoundTrip(context.Background(), &Request{Method: "POST", Scheme: "http", Authority: "m", Path: "/", Body: pr, Abort: func() { pw.CloseWithError(errors.New("aborted")) }})
		done <- outcome{resp, err}
	}()
	f := p.until("HEADERS", func(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok })
	id := f.Header().StreamID
	p.headers(id, false, ":status", "200")
	_ = p.fr.WriteData(id, false, []byte("whole"))
	p.headers(id, true, "grpc-status", "4")
	_ = p.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	o := wait(t, done)
	if o.err != nil {
		t.Fatal(o.err)
	}
	body, err := io.ReadAll(o.resp.Body)
	o.resp.Body.Close()
	if err != nil || string(body) != "whole" || o.resp.Trailer.Get("Grpc-Status") != "4" {
		t.Fatalf("body %q, %v, trailer %v", body, err, o.resp.Trailer)
	}
}

// TestBodilessResponsesKeepTheirLength: a 304 (or a HEAD's answer) may
// carry the Content-Length of a body it does not send; that is no
// mismatch.
func TestBodilessResponsesKeepTheirLength(t *testing.T) {
	c, p := newPeer(t, Options{})
	for _, status := range []string{"304", "204"} {
		id, done := p.request(c)
		p.headers(id, true, ":status", status, "content-length", "1234")
		o := wait(t, done)
		if o.err != nil {
			t.Fatalf("%s: %v", status, o.err)
		}
		if _, err := io.ReadAll(o.resp.Body); err != nil {
			t.Fatalf("%s: %v", status, err)
		}
		o.resp.Body.Close()
	}
}

// TestSilence: Request.Silence fails a stream whose member says nothing
// for that long — before the head (a timeout error, the stream reset)
// and between frames — but not one that keeps sending.
func TestSilence(t *testing.T) {
	c, p := newPeer(t, Options{})
	const d = 200 * time.Millisecond
	start := func() (uint32, chan outcome) {
		t.Helper()
		if !c.Reserve() {
			t.Fatal("Reserve refused")
		}
		done := make(chan outcome, 1)
		go func() {
			resp, err := c.RoundTrip(context.Background(), &Request{Method: "GET", Scheme: "http", Authority: "m", Path: "/", Silence: d})
			done <- outcome{resp, err}
		}()
		f := p.until("HEADERS", func(f http2.Frame) bool { _, ok := f.(*http2.MetaHeadersFrame); return ok })
		return f.Header().StreamID, done
	}

	id, done := start()
	p.until("RST_STREAM CANCEL", isReset(id, http2.ErrCodeCancel))
	var se SilenceError
	var ne net.Error
	if o := wait(t, done); !errors.As(o.err, &se) || !errors.As(o.err, &ne) || !ne.Timeout() {
		t.Fatalf("no head: %v, want a SilenceError that is a net.Error timeout", o.err)
	}

	// A member sending every d/2 for 3d is alive throughout.
	id, done = start()
	p.headers(id, false, ":status", "200")
	o := wait(t, done)
	if o.err != nil {
		t.Fatal(o.err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(o.resp.Body)
		read <- err
	}()
	for range 6 {
		time.Sleep(d / 2)
		_ = p.fr.WriteData(id, false, []byte("tick"))
	}
	_ = p.fr.WriteData(id, true, nil)
	if err := <-read; err != nil {
		t.Fatalf("a member sending every %s: %v", d/2, err)
	}
	o.resp.Body.Close()

	// Then silence mid-answer.
	id, done = start()
	p.headers(id, false, ":status", "200")
	o = wait(t, done)
	_ = p.fr.WriteData(id, false, []byte("first"))
	got, err := io.ReadAll(o.resp.Body)
	o.resp.Body.Close()
	if string(got) != "first" || !errors.As(err, &se) {
		t.Fatalf("silent mid-answer: %q %v", got, err)
	}
}

// closed reports whether c has ended.
func closed(c *Conn) bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}
