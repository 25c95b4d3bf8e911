package h2client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// serveH2 runs golang.org/x/net/http2's server (a real, independent
// implementation) with handler on a loopback listener and returns a
// connected Conn.
func serveH2(t *testing.T, handler http.Handler, o Options) *Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http2.Server{}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { srv.ServeConn(c, &http2.ServeConnOpts{Handler: handler}) })
		}
	})
	c := dial(t, ln.Addr().String(), o)
	t.Cleanup(func() {
		c.Close()
		ln.Close()
		wg.Wait()
	})
	return c
}

// dial connects a Conn with options o to the member at addr.
func dial(t *testing.T, addr string, o Options) *Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(nc, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func get(t *testing.T, c *Conn, ctx context.Context, r *Request) (*Response, error) {
	t.Helper()
	if !c.Reserve() {
		t.Fatal("Reserve: the connection takes no stream")
	}
	return c.RoundTrip(ctx, r)
}

// TestConcurrentStreamsBeyondTheWindows sends bodies larger than the
// member's initial windows on many concurrent streams and reads answers
// larger than ours, with trailers both ways: every byte arrives in order
// on its own stream, so flow control works both ways and streams do not
// starve each other of the connection's window.
func TestConcurrentStreamsBeyondTheWindows(t *testing.T) {
	c := serveH2(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("X-Len", fmt.Sprint(n))
		w.Header().Set("X-Got-Trailer", r.Trailer.Get("X-Check"))
		for i := range 40 { // 40 × 16 KiB: beyond the 256 KiB stream window
			_, _ = w.Write(bytes.Repeat([]byte{byte(i)}, 16<<10))
		}
		w.Header().Set("X-Sum", fmt.Sprintf("%x", h.Sum(nil)))
	}), Options{})
	body := bytes.Repeat([]byte("0123456789abcdef"), 20<<10) // 320 KiB: beyond the member's 64 KiB windows
	want := fmt.Sprintf("%x", sha256.Sum256(body))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			r := &Request{Method: "POST", Scheme: "http", Authority: "member", Path: fmt.Sprint("/", i),
				Header: http.Header{"Trailer": {"X-Check"}}, Body: bytes.NewReader(body), ContentLength: int64(len(body)),
				Trailer: func() http.Header { return http.Header{"X-Check": {"ok"}} }}
			if i%2 == 0 {
				r.BodyComplete = func() bool { return true } // written inline as far as the windows allow
			}
			if !c.Reserve() {
				errs <- errors.New("no stream slot")
				return
			}
			resp, err := c.RoundTrip(context.Background(), r)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil || len(got) != 40*16<<10 || got[len(got)-1] != 39 {
				errs <- fmt.Errorf("stream %d: %d bytes, %v", i, len(got), err)
				return
			}
			if resp.Header.Get("X-Len") != fmt.Sprint(len(body)) || resp.Trailer.Get("X-Sum") != want || resp.Header.Get("X-Got-Trailer") != "ok" {
				errs <- fmt.Errorf("stream %d: head %v, trailer %v", i, resp.Header, resp.Trailer)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.active != 0 || len(c.streams) != 0 {
		t.Errorf("after every stream closed: %d active, %d in the map", c.active, len(c.streams))
	}
}

// TestUnreadBodiesGiveTheWindowBack: streams closed without reading their
// answers return the connection's window, so the connection keeps
// working far beyond its 1 MiB window.
func TestUnreadBodiesGiveTheWindowBack(t *testing.T) {
	c := serveH2(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(bytes.Repeat([]byte("x"), 200<<10))
	}), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a window never returned stalls the member
	defer cancel()
	for i := range 20 { // 20 × 200 KiB = 4 MiB
		resp, err := get(t, c, ctx, &Request{Method: "GET", Scheme: "http", Authority: "m", Path: "/"})
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		var b [1]byte
		if _, err := io.ReadFull(resp.Body, b[:]); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp.Body.Close()
	}
}

// TestCancelResetsTheMembersStream: a cancelled context resets the stream
// at the member and the body sender ends.
func TestCancelResetsTheMembersStream(t *testing.T) {
	gone := make(chan error, 1)
	c := serveH2(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		gone <- r.Context().Err()
	}), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe() // a body still arriving: copied by the stream's goroutine
	resp, err := get(t, c, ctx, &Request{Method: "POST", Scheme: "http", Authority: "m", Path: "/", Body: pr, Abort: func() { pw.CloseWithError(errors.New("aborted")) }})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := resp.Body.Read(make([]byte, 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Read after cancel: %v", err)
	}
	resp.Body.Close() // aborts the body and waits for its sender
	select {
	case err := <-gone:
		t.Logf("the member's request ended: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the member's stream was not reset")
	}
}

// TestRequestHeadChecks: fields HTTP/2 cannot carry are refused before
// anything is written, and the connection keeps working (its hpack state
// untouched); connection-specific fields are not sent.
func TestRequestHeadChecks(t *testing.T) {
	c := serveH2(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Saw-Keep-Alive", fmt.Sprint(r.Header["Keep-Alive"] != nil))
		w.Header().Set("X-Te", r.Header.Get("Te"))
	}), Options{})
	for _, h := range []http.Header{{"X-Bad": {"a\nb"}}, {"Bad Name": {"v"}}} {
		if _, err := get(t, c, context.Background(), &Request{Method: "GET", Scheme: "http", Authority: "m", Path: "/", Header: h}); err == nil {
			t.Errorf("header %q was accepted", h)
		}
	}
	resp, err := get(t, c, context.Background(), &Request{Method: "GET", Scheme: "http", Authority: "m", Path: "/",
		Header: http.Header{"Keep-Alive": {"timeout=5"}, "Te": {"gzip", "trailers"}}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Saw-Keep-Alive") != "false" || resp.Header.Get("X-Te") != "trailers" {
		t.Errorf("member saw %v", resp.Header)
	}
}

func TestLowerName(t *testing.T) {
	for in, want := range map[string]string{"Content-Type": "content-type", "X-Custom-Thing": "x-custom-thing", "already": "already"} {
		if got := lowerName(in); got != want {
			t.Errorf("lowerName(%q) = %q", in, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = lowerName("Content-Type") }); n != 0 {
		t.Errorf("lowerName of a common name allocates %v times", n)
	}
}

func TestToHeader(t *testing.T) {
	h := toHeader([]hpack.HeaderField{{Name: "set-cookie", Value: "a=1"}, {Name: "content-type", Value: "text/plain"}, {Name: "set-cookie", Value: "b=2"}, {Name: "x-one", Value: "1"}})
	if got := h["Set-Cookie"]; len(got) != 2 || got[0] != "a=1" || got[1] != "b=2" {
		t.Errorf("Set-Cookie %q", got)
	}
	if h.Get("Content-Type") != "text/plain" || h.Get("X-One") != "1" || len(h) != 3 {
		t.Errorf("header %v", h)
	}
	h["Content-Type"] = append(h["Content-Type"], "more") // appending to one value must not overwrite another's
	if h.Get("X-One") != "1" || h["Set-Cookie"][1] != "b=2" {
		t.Errorf("an append ran into a neighbour: %v", h)
	}
}
