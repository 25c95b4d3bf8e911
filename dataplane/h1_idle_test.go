package dataplane_test

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// batchConn holds writes back while batching is on, then sends them in one
// write: several TLS records arrive in one TCP segment.
type batchConn struct {
	net.Conn
	batching bool
	buf      bytes.Buffer
}

func (c *batchConn) Write(p []byte) (int, error) {
	if c.batching {
		return c.buf.Write(p)
	}
	return c.Conn.Write(p)
}

func (c *batchConn) flush() error {
	_, err := c.Conn.Write(c.buf.Bytes())
	c.buf.Reset()
	return err
}

// TestH1IdleWaitMissesNothing: an idle connection waits on the socket with
// no buffer, so bytes already received must never be left behind in
// terminator's layers: pipelined requests in separate TLS records of one
// segment, and a request larger than the reader's buffer followed by
// another, are all answered.
func TestH1IdleWaitMissesNothing(t *testing.T) {
	h, _, addr := okListener(t)
	big := strings.Repeat("b", 9000) // one request bigger than the 4 KiB reader
	cases := map[string][]string{
		"three records in one segment": {"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n", "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n", "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n"},
		"large record then another":    {"POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 9000\r\n\r\n" + big, "GET /after HTTP/1.1\r\nHost: a\r\n\r\n"},
		"large header then another":    {"GET /h HTTP/1.1\r\nHost: a\r\nX-Big: " + big + "\r\n\r\n", "GET /after HTTP/1.1\r\nHost: a\r\n\r\n"},
	}
	for name, records := range cases {
		t.Run(name, func(t *testing.T) {
			raw, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			bc := &batchConn{Conn: raw}
			c := tls.Client(bc, &tls.Config{RootCAs: tu.Pool(h.ca), ServerName: "site.example", NextProtos: []string{"http/1.1"}})
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if err := c.Handshake(); err != nil {
				t.Fatal(err)
			}
			// A first exchange, so that the connection has gone idle once.
			if _, err := io.WriteString(c, "GET /0 HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 1024)
			if n, err := c.Read(buf); err != nil || !strings.HasSuffix(string(buf[:n]), "ok") {
				t.Fatalf("first response: %q %v", buf[:n], err)
			}
			time.Sleep(50 * time.Millisecond) // terminator is now waiting on the socket
			bc.batching = true
			for _, rec := range records {
				if _, err := io.WriteString(c, rec); err != nil { // one record each
					t.Fatal(err)
				}
			}
			bc.batching = false
			if err := bc.flush(); err != nil {
				t.Fatal(err)
			}
			var got []byte
			for strings.Count(string(got), "HTTP/1.1 200 OK") < len(records) {
				n, err := c.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					t.Fatalf("after %d of %d responses: %v (got %q)", strings.Count(string(got), "HTTP/1.1 200"), len(records), err, got)
				}
			}
		})
	}
}
