package dataplane_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// TestH2PseudoHeadersAreValidated: HTTP/2 pseudo-headers become the
// member's request line and Host, so a :method, :path or :authority that
// the HTTP/1.x path would refuse is refused here too (400 or a stream
// reset) and never reaches the member. Before the fix a :method of
// "GET /x/SMUGGLED HTTP/1.1" was written into the member's request line.
func TestH2PseudoHeadersAreValidated(t *testing.T) {
	h, m, addr := okListener(t)
	cases := []struct{ name, method, path, authority string }{
		{"method with spaces", "GET /x/SMUGGLED HTTP/1.1", "/", "site.example"},
		{"method with a slash", "GE/T", "/", "site.example"},
		{"CONNECT", "CONNECT", "/", "site.example"},
		{"path with a space", "GET", "/a b", "site.example"},
		{"path with a tab", "GET", "/a\tb", "site.example"},
		{"path not origin-form", "GET", "x", "site.example"},
		{"path with CRLF", "GET", "/a\r\nX-Injected: 1", "site.example"},
		{"authority with a space", "GET", "/", "site.example evil"},
		{"authority with a slash", "GET", "/", "site.example/x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := m.conns.Load()
			status := rawH2Request(t, addr, tu.Pool(h.ca), tc.method, tc.path, tc.authority)
			if status != 400 && status != -1 {
				t.Fatalf("status %d; want 400 or a reset", status)
			}
			if got := m.request(0); got != "" || m.conns.Load() != before {
				t.Fatalf("the member received %q", got)
			}
		})
	}
	// A well-formed request over the same raw client still passes.
	if status := rawH2Request(t, addr, tu.Pool(h.ca), "GET", "/ok?q=1", "site.example"); status != 200 {
		t.Fatalf("valid request: %d", status)
	}
}

// rawH2Request sends one HEADERS frame with the given pseudo-headers,
// encoded by hand so nothing cleans them up, and returns the response
// status, or -1 for a stream reset or GOAWAY.
func rawH2Request(t *testing.T, addr string, roots *x509.CertPool, method, path, authority string) int {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "site.example", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", method}, {":scheme", "https"}, {":authority", authority}, {":path", path}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	dec := hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			fields, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatal(err)
			}
			for _, hf := range fields {
				if hf.Name == ":status" {
					n, _ := strconv.Atoi(hf.Value)
					return n
				}
			}
		case *http2.RSTStreamFrame, *http2.GoAwayFrame:
			return -1
		}
	}
}
