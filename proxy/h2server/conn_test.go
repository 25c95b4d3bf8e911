package h2server

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// client is a raw HTTP/2 client over loopback TCP: the tests write frames
// exactly as a misbehaving client would.
type client struct {
	t    *testing.T
	c    net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	sc   *Conn
	done chan struct{}
}

// serve starts a Conn with handler h on one end of a loopback TCP
// connection and returns a client on the other, preface and SETTINGS
// exchanged.
func serve(t *testing.T, h http.Handler, tune func(*Options)) *client {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Handler: h, IdleTimeout: 10 * time.Second}
	if tune != nil {
		tune(&o)
	}
	cl := &client{t: t, c: cc, fr: http2.NewFramer(cc, cc), sc: NewConn(srv, o), done: make(chan struct{})}
	cl.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	cl.enc = hpack.NewEncoder(&cl.hbuf)
	go func() { defer close(cl.done); cl.sc.Serve(nil) }()
	t.Cleanup(func() {
		cc.Close()
		select {
		case <-cl.done:
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after the client closed")
		}
	})
	_ = cc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(cc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := cl.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return cl
}

// headers encodes fields (name, value pairs) as one block.
func (cl *client) block(kv ...string) []byte {
	cl.hbuf.Reset()
	for i := 0; i < len(kv); i += 2 {
		_ = cl.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return append([]byte(nil), cl.hbuf.Bytes()...)
}

func (cl *client) request(id uint32, end bool, extra ...string) {
	cl.t.Helper()
	kv := append([]string{":method", "POST", ":scheme", "https", ":path", "/", ":authority", "example.test"}, extra...)
	if err := cl.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: cl.block(kv...), EndStream: end, EndHeaders: true}); err != nil {
		cl.t.Fatal(err)
	}
}

// next returns the next frame that is not SETTINGS, a SETTINGS ACK,
// WINDOW_UPDATE or PING ACK, or nil when the connection closed.
func (cl *client) next() http2.Frame {
	cl.t.Helper()
	for {
		f, err := cl.fr.ReadFrame()
		if err != nil {
			return nil
		}
		switch f.(type) {
		case *http2.SettingsFrame, *http2.WindowUpdateFrame:
			continue
		}
		return f
	}
}

// expectReset reads until RST_STREAM on id with code, or GOAWAY with
// goaway (any code when goaway is 0xff), failing on anything else.
func (cl *client) expectReset(id uint32, code http2.ErrCode) {
	cl.t.Helper()
	for {
		switch f := cl.next().(type) {
		case *http2.RSTStreamFrame:
			if f.StreamID == id && f.ErrCode == code {
				return
			}
			cl.t.Fatalf("RST_STREAM %d %v, want %d %v", f.StreamID, f.ErrCode, id, code)
		case nil:
			cl.t.Fatalf("connection closed, want RST_STREAM %v on %d", code, id)
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				cl.t.Fatalf("response HEADERS on stream %d, want RST_STREAM %v", id, code)
			}
		default:
			cl.t.Fatalf("%v, want RST_STREAM %v on %d", f, code, id)
		}
	}
}

func (cl *client) expectGoAway(code http2.ErrCode) {
	cl.t.Helper()
	for {
		switch f := cl.next().(type) {
		case *http2.GoAwayFrame:
			if f.ErrCode != code {
				cl.t.Fatalf("GOAWAY %v, want %v", f.ErrCode, code)
			}
			return
		case nil:
			cl.t.Fatalf("connection closed without GOAWAY %v", code)
		}
	}
}

// responses reads the responses of streams ids, in whatever order their
// frames come: status and body by stream.
func (cl *client) responses(ids ...uint32) map[uint32]string {
	cl.t.Helper()
	got := map[uint32]string{}
	open := map[uint32]bool{}
	for _, id := range ids {
		open[id] = true
	}
	for len(open) > 0 {
		switch f := cl.next().(type) {
		case *http2.MetaHeadersFrame:
			if s := f.PseudoValue("status"); s != "" {
				got[f.StreamID] = s + " "
			}
			if f.StreamEnded() {
				delete(open, f.StreamID)
			}
		case *http2.DataFrame:
			got[f.StreamID] += string(f.Data())
			if f.StreamEnded() {
				delete(open, f.StreamID)
			}
		case nil:
			cl.t.Fatalf("connection closed with streams %v open", open)
		default:
			cl.t.Fatalf("unexpected %v", f)
		}
	}
	return got
}

// response reads stream id's response: status, body and trailers.
func (cl *client) response(id uint32) (status string, body string, trailers []hpack.HeaderField) {
	cl.t.Helper()
	var b strings.Builder
	for {
		switch f := cl.next().(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID != id {
				continue
			}
			if status == "" {
				status = f.PseudoValue("status")
			} else {
				trailers = f.RegularFields()
			}
			if f.StreamEnded() {
				return status, b.String(), trailers
			}
		case *http2.DataFrame:
			if f.StreamID == id {
				b.Write(f.Data())
				if f.StreamEnded() {
					return status, b.String(), trailers
				}
			}
		case nil:
			cl.t.Fatalf("connection closed before the response of stream %d ended", id)
		default:
			cl.t.Fatalf("unexpected %v", f)
		}
	}
}

var hello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "hello "+string(body))
})

func TestRequestAndResponse(t *testing.T) {
	cl := serve(t, hello, nil)
	cl.request(1, false, "content-length", "5")
	if err := cl.fr.WriteData(1, true, []byte("world")); err != nil {
		t.Fatal(err)
	}
	if status, body, _ := cl.response(1); status != "200" || body != "hello world" {
		t.Fatalf("got %s %q", status, body)
	}
}

func TestHeadersOnHalfClosedStream(t *testing.T) {
	release := make(chan struct{})
	cl := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		<-r.Context().Done() // the reset cancels the request
	}), nil)
	defer close(release)
	cl.request(1, true)
	cl.request(1, true)
	cl.expectReset(1, http2.ErrCodeStreamClosed)
}

func TestResetStreamWritesNothingMore(t *testing.T) {
	var wg sync.WaitGroup
	wg.Add(1)
	cl := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer wg.Done()
		<-r.Context().Done()
		w.WriteHeader(200) // after the reset: must never reach the client
	}), nil)
	cl.request(1, true)
	cl.request(1, true)
	cl.expectReset(1, http2.ErrCodeStreamClosed)
	wg.Wait()
	if err := cl.fr.WritePing(false, [8]byte{1}); err != nil {
		t.Fatal(err)
	}
	for {
		switch f := cl.next().(type) {
		case *http2.PingFrame:
			return
		case nil:
			t.Fatal("connection closed")
		default:
			t.Fatalf("got %v after the reset, want only the PING answer", f)
		}
	}
}

// TestRapidResetIsCut: a client that opens streams only to reset them
// (CVE-2023-44487) gets GOAWAY ENHANCE_YOUR_CALM, long before it could
// have handlers pile up.
func TestRapidResetIsCut(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	cl := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}), nil)
	go func() {
		blk := cl.block(":method", "GET", ":scheme", "https", ":path", "/", ":authority", "a.test")
		for id := uint32(1); id < 2000; id += 2 {
			if cl.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk, EndStream: true, EndHeaders: true}) != nil ||
				cl.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
				return
			}
		}
	}()
	cl.expectGoAway(http2.ErrCodeEnhanceYourCalm)
}

// TestPingFloodIsCut: PINGs past the budget end the connection.
func TestPingFloodIsCut(t *testing.T) {
	cl := serve(t, hello, nil)
	go func() {
		for i := 0; i < 1000; i++ {
			if cl.fr.WritePing(false, [8]byte{byte(i)}) != nil {
				return
			}
		}
	}()
	for {
		switch f := cl.next().(type) {
		case *http2.PingFrame:
			continue
		case *http2.GoAwayFrame:
			if f.ErrCode != http2.ErrCodeEnhanceYourCalm {
				t.Fatalf("GOAWAY %v", f.ErrCode)
			}
			return
		case nil:
			t.Fatal("closed without GOAWAY")
		default:
			t.Fatalf("unexpected %v", f)
		}
	}
}

// TestContinuationFloodIsCut: a header block spread over empty
// CONTINUATION frames (each adds nothing to the size limit) is cut after
// maxContinuations frames.
func TestContinuationFloodIsCut(t *testing.T) {
	cl := serve(t, hello, nil)
	blk := cl.block(":method", "GET", ":scheme", "https", ":path", "/", ":authority", "a.test")
	if err := cl.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndStream: true}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := 0; i < 10000; i++ {
			if cl.fr.WriteContinuation(1, false, nil) != nil {
				return
			}
		}
	}()
	cl.expectGoAway(http2.ErrCodeEnhanceYourCalm)
}

// TestHeaderListTooLarge: a request over MaxHeaderBytes is answered 431
// and the connection carries on.
func TestHeaderListTooLarge(t *testing.T) {
	cl := serve(t, hello, func(o *Options) { o.MaxHeaderBytes = 1024 })
	cl.request(1, true, "x-big", strings.Repeat("a", 2000))
	if status, _, _ := cl.response(1); status != "431" {
		t.Fatalf("status %s, want 431", status)
	}
	cl.request(3, true)
	if status, _, _ := cl.response(3); status != "200" {
		t.Fatalf("next request: %s", status)
	}
}

// TestConcurrentStreamsLimit: a stream beyond MaxConcurrentStreams is
// refused (and may be retried); the open ones are served.
func TestConcurrentStreamsLimit(t *testing.T) {
	release := make(chan struct{})
	cl := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }), func(o *Options) { o.MaxConcurrentStreams = 2 })
	cl.request(1, true)
	cl.request(3, true)
	cl.request(5, true)
	cl.expectReset(5, http2.ErrCodeRefusedStream)
	close(release)
	if got := cl.responses(1, 3); got[1] != "200 " || got[3] != "200 " {
		t.Fatalf("responses %v", got)
	}
}

// TestMalformedRequests: RFC 9113 §8's rules end the stream with
// PROTOCOL_ERROR; the connection serves the next request.
func TestMalformedRequests(t *testing.T) {
	cl := serve(t, hello, nil)
	id := uint32(1)
	for _, extra := range [][]string{
		{"connection", "keep-alive"},
		{"te", "gzip"},
		{"transfer-encoding", "chunked"},
		{"host", "other.test"},
		{"content-length", "1", "content-length", "2"},
		{"Upper-Case", "x"},
	} {
		cl.request(id, true, extra...)
		cl.expectReset(id, http2.ErrCodeProtocol)
		id += 2
	}
	cl.request(id, false, "content-length", "3")
	_ = cl.fr.WriteData(id, true, []byte("four"))
	cl.expectReset(id, http2.ErrCodeProtocol)
	id += 2
	cl.request(id, true, "te", "trailers", "host", "example.test")
	if status, _, _ := cl.response(id); status != "200" {
		t.Fatalf("well-formed request after the malformed ones: %s", status)
	}
}

// TestFlowControlAndTrailers: a response larger than the client's window
// waits for WINDOW_UPDATE; trailers end the stream in a HEADERS frame.
func TestFlowControlAndTrailers(t *testing.T) {
	big := strings.Repeat("x", 200<<10)
	cl := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Grpc-Status")
		io.WriteString(w, big)
		w.Header().Set("Grpc-Status", "0")
	}), nil)
	cl.request(1, true)
	var got int
	var trailers []hpack.HeaderField
	for done := false; !done; {
		switch f := cl.next().(type) {
		case *http2.DataFrame:
			got += len(f.Data())
			if len(f.Data()) > 0 {
				_ = cl.fr.WriteWindowUpdate(0, uint32(len(f.Data())))
				_ = cl.fr.WriteWindowUpdate(1, uint32(len(f.Data())))
			}
			if f.StreamEnded() {
				t.Fatal("DATA ended the stream before the trailers")
			}
		case *http2.MetaHeadersFrame:
			if f.PseudoValue("status") == "" {
				trailers, done = f.RegularFields(), true
			}
		case nil:
			t.Fatal("closed")
		}
	}
	if got != len(big) || len(trailers) != 1 || trailers[0].Name != "grpc-status" || trailers[0].Value != "0" {
		t.Fatalf("got %d bytes (want %d), trailers %v", got, len(big), trailers)
	}
}

// TestShutdownSendsGoAway: Shutdown names the last stream taken, lets it
// finish, refuses later ones by not taking them, then closes.
func TestShutdownSendsGoAway(t *testing.T) {
	release := make(chan struct{})
	cl := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "done")
	}), nil)
	cl.request(1, true)
	cl.request(3, true)
	time.Sleep(50 * time.Millisecond) // both taken
	cl.sc.Shutdown()
	f, ok := cl.next().(*http2.GoAwayFrame)
	if !ok || f.LastStreamID != 3 || f.ErrCode != http2.ErrCodeNo {
		t.Fatalf("got %v, want GOAWAY NO_ERROR last stream 3", f)
	}
	cl.request(5, true) // past the GOAWAY: ignored
	close(release)
	if got := cl.responses(1, 3); got[1] != "200 done" || got[3] != "200 done" {
		t.Fatalf("responses %v", got)
	}
	if f := cl.next(); f != nil {
		t.Fatalf("got %v, want the connection closed", f)
	}
	select {
	case <-cl.done:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
}

// TestIdleWaitAfterLastStream: when the last stream ends while the read
// loop waits for the next frame, the loop is interrupted to wait idle
// (WaitIdle, where the proxy gives the read buffer back), and the
// connection then serves the next request as before.
func TestIdleWaitAfterLastStream(t *testing.T) {
	var waits atomic.Int32
	cl := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond) // the read loop is blocked meanwhile
		io.WriteString(w, "done")
	}), func(o *Options) { o.WaitIdle = func() error { waits.Add(1); return nil } })
	for i, id := range []uint32{1, 3, 5} {
		before := waits.Load()
		cl.request(id, true)
		if status, body, _ := cl.response(id); status != "200" || body != "done" {
			t.Fatalf("request %d: %s %q", i, status, body)
		}
		deadline := time.Now().Add(2 * time.Second)
		for waits.Load() == before && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if waits.Load() == before {
			t.Fatalf("after request %d: the read loop did not go back to waiting idle", i)
		}
	}
}
