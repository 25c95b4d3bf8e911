package dataplane_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// BenchmarkRequestPath measures one proxied request end to end in process:
// client -> TLS listener (HTTP/1.1 keep-alive or HTTP/2) -> member -> back.
// The client and the backend run in the same process, so compare runs of
// this benchmark with each other (benchstat), not with other proxies.
func BenchmarkRequestPath(b *testing.B) {
	body := strings.Repeat("x", 1024)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, body)
	}))
	defer backend.Close()
	for _, mode := range []struct {
		name string
		h2   bool
	}{{"h1", false}, {"h2", true}} {
		b.Run(mode.name, func(b *testing.B) {
			h := newBenchHarness(b)
			h.cert("site.pem", "site.example")
			_, port := tu.HostPort(b, backend.URL)
			h.mustApply(oneListener("    insert_headers: {X-Forwarded-For: \"true\", X-Forwarded-Proto: \"true\"}\n", "{address: 127.0.0.1, protocol_port: "+port+"}"))
			c := tu.Client(tu.Pool(h.ca), "site.example", mode.h2)
			defer c.CloseIdleConnections()
			url := "https://" + h.addr("127.0.0.1:0") + "/"
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := c.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}

// BenchmarkHandshakePath measures a new client connection per request, as
// the bench's hs-ec scenario does: TLS 1.3 full handshake with an ECDSA
// P-256 certificate, one HTTP/1.1 request forwarded to a member, close.
// Client and backend are in the process too; take a -memprofile and read
// the server's side of it to follow terminator's own allocations.
func BenchmarkHandshakePath(b *testing.B) {
	h, addr := okSite(b)
	cfg := &tls.Config{RootCAs: tu.Pool(h.ca), ServerName: "site.example", NextProtos: []string{"http/1.1"}, CurvePreferences: []tls.CurveID{tls.X25519}} // as bench/cmd/loadgen: haproxy and nginx (OpenSSL 3.0) have no ML-KEM
	b.ReportAllocs()
	for b.Loop() {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := h1Request(c); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// okSite serves site.example on a TLS listener in front of a member that
// answers "ok", and returns the harness and the listener's address.
func okSite(b *testing.B) (*harness, string) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	b.Cleanup(backend.Close)
	h := newBenchHarness(b)
	h.cert("site.pem", "site.example")
	_, port := tu.HostPort(b, backend.URL)
	h.mustApply(oneListener("", "{address: 127.0.0.1, protocol_port: "+port+"}"))
	return h, h.addr("127.0.0.1:0")
}

// BenchmarkIdleConnMemory opens b.N idle TLS keep-alive connections (one
// request each, as the bench's mem scenario) and reports the live heap
// and goroutine stack memory per connection after a GC, so that the share
// of each can be followed across changes. The client side is in the same
// process: its memory is measured by opening the same connections to a
// plain crypto/tls echo listener and subtracting.
func BenchmarkIdleConnMemory(b *testing.B) { idleConnMemory(b, "http/1.1") }

// BenchmarkIdleH2ConnMemory is BenchmarkIdleConnMemory for HTTP/2
// connections: one stream each, then idle. The client keeps only its
// tls.Conn, as in the HTTP/1.1 case.
func BenchmarkIdleH2ConnMemory(b *testing.B) { idleConnMemory(b, "h2") }

func idleConnMemory(b *testing.B, proto string) {
	h, addr := okSite(b)
	roots := tu.Pool(h.ca)
	b.ReportAllocs()
	before := idleMemory()
	conns := make([]*tls.Conn, 0, b.N)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < b.N; i++ {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "site.example", NextProtos: []string{proto}})
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		if proto == "h2" {
			err = h2Request(c)
		} else {
			err = h1Request(c)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // every server goroutine is parked
	after := idleMemory()
	b.StopTimer()
	// The client's share: its tls.Conn per connection, measured alone.
	client := clientConnMemory(b, h, b.N)
	heap := float64(after.heap-before.heap-client.heap) / float64(b.N)
	stack := float64(after.stack-before.stack-client.stack) / float64(b.N)
	b.ReportMetric(heap/1024, "heap-KiB/conn")
	b.ReportMetric(stack/1024, "stack-KiB/conn")
}

func h1Request(c *tls.Conn) error {
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: site.example\r\n\r\n"); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	if n, err := c.Read(buf); err != nil || !strings.HasSuffix(string(buf[:n]), "ok") {
		return fmt.Errorf("response %q: %v", buf[:n], err)
	}
	return nil
}

// h2Request sends one GET on stream 1 and reads until its end.
func h2Request(c *tls.Conn) error {
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return err
	}
	fr := http2.NewFramer(c, c)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {":authority", "site.example"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteSettings(); err != nil {
		return err
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		return err
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return err
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			_ = fr.WriteSettingsAck()
		}
		if f.Header().StreamID == 1 && f.Header().Flags.Has(http2.FlagDataEndStream) {
			return nil
		}
	}
}

type memSample struct{ heap, stack int64 }

func idleMemory() memSample {
	runtime.GC()
	runtime.GC() // a second cycle shrinks the stacks the first found oversized
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heap: int64(ms.HeapAlloc), stack: int64(ms.StackInuse)}
}

// clientConnMemory measures n client TLS connections to a bare crypto/tls
// server that holds them without goroutines after the handshake.
func clientConnMemory(b *testing.B, h *harness, n int) memSample {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	srvCert, err := tls.LoadX509KeyPair(h.dir+"/site.pem", h.dir+"/site.pem")
	if err != nil {
		b.Fatal(err)
	}
	held := make(chan net.Conn, n)
	go func() {
		for i := 0; i < n; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{srvCert}})
			_ = tc.Handshake()
			held <- c // the raw socket only: the server side is not counted below
		}
	}()
	before := idleMemory()
	conns := make([]*tls.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: tu.Pool(h.ca), ServerName: "site.example"})
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i := 0; i < n; i++ {
		<-held
	}
	after := idleMemory()
	for _, c := range conns {
		c.Close()
	}
	return memSample{heap: after.heap - before.heap, stack: after.stack - before.stack}
}
