package dataplane_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawMember is a member that answers each request with scripted bytes, so
// that tests can send what well-behaved servers never do. It counts the
// connections terminator opens and records the requests it receives.
type rawMember struct {
	ln    net.Listener
	tls   *tls.Config // non-nil: the member speaks TLS
	conns atomic.Int32
	mu    sync.Mutex
	open  []net.Conn // closed at cleanup
	reqs  []string   // request line, framing, header and body, as received
	// answer returns the raw response to request n (from 0) and whether
	// to close the connection after writing it.
	answer func(n int, r *http.Request) (string, bool)
	wg     sync.WaitGroup
}

// pause in a scripted answer splits it into two writes 50 ms apart.
const pause = "\x00pause\x00"

func newRawMember(t *testing.T, answer func(n int, r *http.Request) (string, bool)) *rawMember {
	return newRawTLSMember(t, nil, answer)
}

// newRawTLSMember is newRawMember speaking TLS with cfg when cfg is set.
func newRawTLSMember(t *testing.T, cfg *tls.Config, answer func(n int, r *http.Request) (string, bool)) *rawMember {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &rawMember{ln: ln, tls: cfg, answer: answer}
	m.wg.Add(1)
	go m.serve()
	t.Cleanup(func() {
		ln.Close()
		m.mu.Lock()
		for _, c := range m.open {
			c.Close()
		}
		m.mu.Unlock()
		m.wg.Wait()
	})
	return m
}

func (m *rawMember) serve() {
	defer m.wg.Done()
	var n atomic.Int32
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		m.conns.Add(1)
		m.mu.Lock()
		m.open = append(m.open, c)
		m.mu.Unlock()
		if m.tls != nil {
			c = tls.Server(c, m.tls)
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer c.Close()
			br := bufio.NewReader(c)
			for {
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				r, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				body, _ := io.ReadAll(r.Body)
				var head strings.Builder
				_ = r.Header.Write(&head)
				m.mu.Lock()
				framing := fmt.Sprintf("TE=%v CL=%d\n", r.TransferEncoding, r.ContentLength)
				m.reqs = append(m.reqs, r.Method+" "+r.RequestURI+"\n"+framing+head.String()+"\n"+string(body))
				m.mu.Unlock()
				resp, closeAfter := m.answer(int(n.Add(1)-1), r)
				for i, part := range strings.Split(resp, pause) {
					if i > 0 {
						time.Sleep(50 * time.Millisecond)
					}
					if _, err := io.WriteString(c, part); err != nil {
						return
					}
				}
				if closeAfter {
					return
				}
			}
		}()
	}
}

// okListener is a harness with one TLS listener in front of a raw member
// that answers "ok" to every request, and the listener's address.
func okListener(t *testing.T) (*harness, *rawMember, string) {
	t.Helper()
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	m := newRawMember(t, func(int, *http.Request) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	h.mustApply(oneListener("", m.spec()))
	return h, m, h.addr("127.0.0.1:0")
}

func (m *rawMember) spec() string {
	return fmt.Sprintf("{address: 127.0.0.1, protocol_port: %d}", m.ln.Addr().(*net.TCPAddr).Port)
}

func (m *rawMember) request(i int) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i >= len(m.reqs) {
		return ""
	}
	return m.reqs[i]
}

// TestMemberResponseFraming checks the own member client against the
// framings and malformations members send.
func TestMemberResponseFraming(t *testing.T) {
	cases := []struct {
		name       string
		resp       string
		closeAfter bool
		status     int
		body       string
		reuse      bool // the member connection serves the next request
	}{
		{"content length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, 200, "hello", true},
		{"chunked with trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\nX-Trailer: t\r\n\r\n", false, 200, "hello", true},
		{"until close", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello", true, 200, "hello", false},
		{"HTTP/1.0 without keep-alive", "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", true, 200, "hello", false},
		{"interim 100 and 103 skipped", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, 200, "ok", true},
		{"no content", "HTTP/1.1 204 No Content\r\n\r\n", false, 204, "", true},
		{"both framings", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", true, 502, "failed to answer", false},
		{"differing lengths", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", true, 502, "failed to answer", false},
		{"gzip transfer coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", true, 502, "failed to answer", false},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n  folded\r\nContent-Length: 0\r\n\r\n", true, 502, "failed to answer", false},
		{"bare CR in a value", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n", true, 502, "failed to answer", false},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", true, 502, "failed to answer", false},
		{"101 unasked", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", true, 502, "failed to answer", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.cert("site.pem", "site.example")
			m := newRawMember(t, func(int, *http.Request) (string, bool) { return tc.resp, tc.closeAfter })
			h.mustApply(oneListener("", m.spec()))
			c := h.client("site.example", false)
			url := "https://" + h.addr("127.0.0.1:0") + "/"
			for i := 0; i < 2; i++ {
				resp, err := c.Get(url)
				if err != nil {
					t.Fatal(err)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != tc.status || !strings.Contains(string(body), tc.body) {
					t.Fatalf("request %d: %d %q %v; want %d with %q", i, resp.StatusCode, body, err, tc.status, tc.body)
				}
			}
			if want := int32(2); tc.reuse {
				want = 1
				if got := m.conns.Load(); got != want {
					t.Fatalf("member connections: %d, want %d", got, want)
				}
			} else if got := m.conns.Load(); got != want {
				t.Fatalf("member connections: %d, want %d (no reuse after this response)", got, want)
			}
		})
	}
}

// TestMemberTruncatedResponse: a body cut short by the member must not
// reach the client as a complete response.
func TestMemberTruncatedResponse(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	for _, resp := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
	} {
		m := newRawMember(t, func(int, *http.Request) (string, bool) { return resp, true })
		h.mustApply(oneListener("", m.spec()))
		c := h.client("site.example", false)
		r, err := c.Get("https://" + h.addr("127.0.0.1:0") + "/")
		if err == nil { // else the connection was cut before the head
			_, err = io.ReadAll(r.Body)
			r.Body.Close()
		}
		if err == nil {
			t.Fatalf("response %q: client read a complete body", resp)
		}
	}
}

// TestMemberStaleConnection: a member that closes its keep-alive
// connection after each response (as on its idle timeout) costs the client
// nothing, for requests that may be sent twice and for POSTs alike.
func TestMemberStaleConnection(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	// The member answers with keep-alive but closes right after, before
	// terminator can notice: the next request finds a dead connection.
	m := newRawMember(t, func(int, *http.Request) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true
	})
	h.mustApply(oneListener("", m.spec()))
	c := h.client("site.example", false)
	url := "https://" + h.addr("127.0.0.1:0") + "/"
	for i, method := range []string{"GET", "GET", "POST", "POST", "DELETE", "PATCH"} {
		time.Sleep(20 * time.Millisecond) // the close has arrived
		req := newRequest(t, method, url, strings.NewReader("payload"))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("request %d (%s): %d %q", i, method, resp.StatusCode, body)
		}
		if got := m.request(i); !strings.Contains(got, "\npayload") || !strings.Contains(got, "CL=7") {
			t.Fatalf("request %d (%s) reached the member as %q", i, method, got)
		}
	}
}

// TestMemberRequestFraming: what the member receives is re-framed by
// terminator: hop-by-hop fields gone, chunked bodies of unknown length,
// Content-Length: 0 on an empty POST, origin-form targets.
func TestMemberRequestFraming(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	m := newRawMember(t, func(int, *http.Request) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n\r\n", false
	})
	h.mustApply(oneListener("", m.spec()))
	addr := h.addr("127.0.0.1:0")
	c := h.client("site.example", false)

	req := newRequest(t, "POST", "https://"+addr+"/up?q=1", io.MultiReader(strings.NewReader("ab"), strings.NewReader("cd")))
	req.ContentLength = -1 // sent chunked by the client
	req.Header.Set("Connection", "X-Drop")
	req.Header.Set("X-Drop", "1")
	req.Header.Set("Te", "trailers")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Secret") != "" || resp.Header.Get("Keep-Alive") != "" {
		t.Fatalf("hop-by-hop response fields reached the client: %v", resp.Header)
	}
	got := m.request(0)
	for _, want := range []string{"POST /up?q=1\n", "TE=[chunked] CL=-1", "\nabcd"} {
		if !strings.Contains(got, want) {
			t.Fatalf("member got %q, missing %q", got, want)
		}
	}
	for _, bad := range []string{"X-Drop", "Te:"} {
		if strings.Contains(got, bad) {
			t.Fatalf("member got %q, with hop-by-hop %q", got, bad)
		}
	}

	resp, err = c.Post("https://"+addr+"/empty", "text/plain", http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := m.request(1); !strings.Contains(got, "CL=0\n") || !strings.Contains(got, "Content-Length: 0\r\n") {
		t.Fatalf("empty POST reached the member as %q", got)
	}
}
