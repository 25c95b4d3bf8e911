package dataplane_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// oneListener is a TERMINATED_HTTPS listener in front of the given members.
func oneListener(extra, members string) string {
	return `
listeners:
  - name: web
    protocol: TERMINATED_HTTPS
    bind: 127.0.0.1:0
    default_tls_container_ref: file://{{dir}}/site.pem
    default_pool: app
` + extra + `
pools:
  - name: app
    members: [` + members + `]
`
}

func member(t *testing.T, url string) string {
	_, port := tu.HostPort(t, url)
	return "{address: 127.0.0.1, protocol_port: " + port + "}"
}

func TestErrorsAndTimeouts(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close() // nothing listens there now: connections are refused

	cases := []struct {
		name, yaml string
		status     int
		body       string
	}{
		{"member refuses", oneListener("", fmt.Sprintf("{address: 127.0.0.1, protocol_port: %d}", deadPort)), 502, "could not be reached"},
		{"member too slow", oneListener("    timeout_member_data: 300", member(t, slow.URL)), 504, "did not answer in time"},
		{"no member takes traffic", oneListener("", "{address: 127.0.0.1, protocol_port: 1, weight: 0}"), 503, "no pool member"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.mustApply(tc.yaml)
			c := h.client("site.example", false)
			start := time.Now()
			resp, err := c.Get("https://" + h.addr("127.0.0.1:0") + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.body) {
				t.Fatalf("got %d %q, want %d with %q", resp.StatusCode, body, tc.status, tc.body)
			}
			if tc.status == 504 && time.Since(start) > 2*time.Second {
				t.Fatalf("504 took %v; timeout_member_data is 300ms", time.Since(start))
			}
		})
	}
	t.Run("listener without pool", func(t *testing.T) {
		h.mustApply(`
listeners:
  - {name: web, protocol: TERMINATED_HTTPS, bind: 127.0.0.1:0, default_tls_container_ref: "file://{{dir}}/site.pem"}
`)
		resp, err := h.client("site.example", false).Get("https://" + h.addr("127.0.0.1:0") + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Fatalf("status %d, want 503", resp.StatusCode)
		}
	})
}

func TestClientTimeouts(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	backend := tu.EchoBackend(t)
	h.mustApply(oneListener("    timeout_client_data: 400", member(t, backend.URL)))
	addr := h.addr("127.0.0.1:0")

	closedWithin := func(t *testing.T, c net.Conn, d time.Duration) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(d))
		_, err := io.Copy(io.Discard, c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("server kept a silent connection open for %v", d)
		}
	}
	t.Run("silent before handshake", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		closedWithin(t, c, 3*time.Second)
	})
	t.Run("partial headers (slowloris)", func(t *testing.T) {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: tu.Pool(h.ca), ServerName: "site.example", NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
		closedWithin(t, c, 3*time.Second)
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: tu.Pool(h.ca), ServerName: "site.example", NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("first request: %v", err)
		}
		closedWithin(t, c, 3*time.Second)
	})
	t.Run("stalled upload", func(t *testing.T) {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: tu.Pool(h.ca), ServerName: "site.example", NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial"))
		closedWithin(t, c, 3*time.Second)
	})
}

func TestConnectionLimit(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	h.mustApply(oneListener("    connection_limit: 2", "{address: 127.0.0.1, protocol_port: 9}"))
	addr := h.addr("127.0.0.1:0")
	cfg := &tls.Config{RootCAs: tu.Pool(h.ca), ServerName: "site.example"}
	var open []net.Conn
	for range 2 {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
	}
	third := make(chan error, 1)
	go func() {
		d := &net.Dialer{Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
		if err == nil {
			c.Close()
		}
		third <- err
	}()
	select {
	case err := <-third:
		t.Fatalf("a third connection was served beyond connection_limit 2 (err %v)", err)
	case <-time.After(500 * time.Millisecond):
	}
	open[0].Close()
	select {
	case err := <-third:
		if err != nil {
			t.Fatalf("the waiting connection failed once a slot was free: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the waiting connection was not served after a slot was freed")
	}
	open[1].Close()
}

func TestStreamingLargeBodies(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	const size = 8 << 20
	download := make([]byte, size)
	_, _ = rand.Read(download)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			sum := sha256.New()
			n, _ := io.Copy(sum, r.Body)
			fmt.Fprintf(w, "%d %x", n, sum.Sum(nil))
			return
		}
		_, _ = w.Write(download)
	}))
	defer backend.Close()
	h.mustApply(oneListener("", member(t, backend.URL)))
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			c := h.client("site.example", h2)
			resp, err := c.Get("https://" + h.addr("127.0.0.1:0") + "/")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(got, download) {
				t.Fatalf("download: got %d bytes, want %d identical", len(got), size)
			}
			upload := make([]byte, size)
			_, _ = rand.Read(upload)
			resp, err = c.Post("https://"+h.addr("127.0.0.1:0")+"/", "application/octet-stream", bytes.NewReader(upload))
			if err != nil {
				t.Fatal(err)
			}
			reply, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := fmt.Sprintf("%d %x", size, sha256.Sum256(upload)); string(reply) != want {
				t.Fatalf("upload: backend saw %q, want %q", reply, want)
			}
		})
	}
}

func TestWebSocketUpgrade(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(conn, brw) // echo until the client closes
	}))
	defer backend.Close()
	// The member timeout must not cut an established tunnel.
	h.mustApply(oneListener("    timeout_member_data: 300", member(t, backend.URL)))
	c, err := tls.Dial("tcp", h.addr("127.0.0.1:0"), &tls.Config{RootCAs: tu.Pool(h.ca), ServerName: "site.example", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("GET /ws HTTP/1.1\r\nHost: site.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	for i := range 3 {
		msg := fmt.Sprintf("ping %d\n", i)
		_, _ = c.Write([]byte(msg))
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		line, err := br.ReadString('\n')
		if err != nil || line != msg {
			t.Fatalf("echo %d: %q %v", i, line, err)
		}
		time.Sleep(200 * time.Millisecond) // 600ms in all: longer than timeout_member_data
	}
}

func TestHeaderSizeLimit(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	backend := tu.EchoBackend(t)
	h.mustApply(oneListener("", member(t, backend.URL)))
	req := newRequest(t, "GET", "https://"+h.addr("127.0.0.1:0")+"/", nil)
	req.Header.Set("X-Huge", strings.Repeat("a", 100<<10))
	resp, err := h.client("site.example", false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("100 KiB of headers: status %d, want 431", resp.StatusCode)
	}
}

func TestAllowedCIDRs(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	backend := tu.EchoBackend(t)
	h.mustApply(oneListener("    allowed_cidrs: [127.0.0.2/32, \"::1/128\"]", member(t, backend.URL)))
	addr := h.addr("127.0.0.1:0")
	dial := func(from string) error {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 3 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: tu.Pool(h.ca), ServerName: "site.example"})
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial("127.0.0.1"); err == nil {
		t.Fatal("a source outside allowed_cidrs was served")
	}
	if err := dial("127.0.0.2"); err != nil {
		t.Fatalf("an allowed source was refused: %v", err)
	}
	if v := promtest.ToFloat64(h.mx.HandshakeFailures.WithLabelValues("web", "source_not_allowed")); v != 1 {
		t.Fatalf("refusals counted %v, want 1", v)
	}
}

// TestConnectionLimitRefusesAfterWaiting: with no slot freed, the excess
// connection is refused once the queue wait (timeout_member_connect) ends.
func TestConnectionLimitRefusesAfterWaiting(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	h.mustApply(oneListener("    connection_limit: 1\n    timeout_member_connect: 300", "{address: 127.0.0.1, protocol_port: 9}"))
	addr := h.addr("127.0.0.1:0")
	cfg := &tls.Config{RootCAs: tu.Pool(h.ca), ServerName: "site.example"}
	first, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	start := time.Now()
	second, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err == nil {
		second.Close()
		t.Fatal("a connection over connection_limit was served")
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Fatalf("refused after %v; want after the 300ms queue wait", d)
	}
	if v := promtest.ToFloat64(h.mx.HandshakeFailures.WithLabelValues("web", "connection_limit")); v != 1 {
		t.Fatalf("connection_limit refusals counted %v", v)
	}
}
