package dataplane_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// rawTLS sends raw bytes over a TLS connection negotiated as HTTP/1.1 and
// returns all the server sent until it closed (or 3 s passed).
func rawTLS(t *testing.T, h *harness, addr, raw string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: tu.Pool(h.ca), ServerName: "site.example", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(c) // ends at the server's close or the deadline
	return string(out)
}

// TestH1RequestStrictness: terminator's own HTTP/1.1 parser refuses every
// ambiguous framing with a clear status and closes the connection, and no
// smuggled request ever reaches the member.
func TestH1RequestStrictness(t *testing.T) {
	h, m, addr := okListener(t)
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: site.example\r\n\r\n"
	cases := []struct{ name, req, want string }{
		{"CL and TE", "POST / HTTP/1.1\r\nHost: site.example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, "400 Bad Request"},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: site.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 50\r\n\r\n0\r\n\r\n" + smuggled, "400 Bad Request"},
		{"differing CL", "POST / HTTP/1.1\r\nHost: site.example\r\nContent-Length: 0\r\nContent-Length: 48\r\n\r\n" + smuggled, "400 Bad Request"},
		{"TE gzip, chunked", "POST / HTTP/1.1\r\nHost: site.example\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + smuggled, "400 Bad Request"},
		{"TE with space before colon", "POST / HTTP/1.1\r\nHost: site.example\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + smuggled, "400 Bad Request"},
		{"obs-fold TE", "POST / HTTP/1.1\r\nHost: site.example\r\nX: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, "400 Bad Request"},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400 Bad Request"},
		{"missing Host", "GET / HTTP/1.1\r\n\r\n", "400 Bad Request"},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400 Bad Request"},
		{"bad request line", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request"},
		{"control in target", "GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n", "400 Bad Request"},
		{"HTTP/2 over h1", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "505 HTTP Version Not Supported"},
		{"odd Expect", "GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", "417 Expectation Failed"},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "400 Bad Request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := rawTLS(t, h, addr, tc.req)
			if !strings.HasPrefix(out, "HTTP/1.1 "+tc.want+"\r\n") || !strings.Contains(out, "Connection: close\r\n") {
				t.Fatalf("got %q, want %s and a close", out, tc.want)
			}
			if n := strings.Count(out, "HTTP/1.1 "); n != 1 {
				t.Fatalf("got %d responses on the connection: %q", n, out)
			}
		})
	}
	for i := 0; ; i++ {
		req := m.request(i)
		if req == "" {
			break
		}
		t.Errorf("the member received %q", req)
	}

	t.Run("bad chunk framing in the body", func(t *testing.T) {
		out := rawTLS(t, h, addr, "POST /c HTTP/1.1\r\nHost: site.example\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"+smuggled)
		if !strings.HasPrefix(out, "HTTP/1.1 400 Bad Request\r\n") || strings.Count(out, "HTTP/1.1 ") != 1 {
			t.Fatalf("got %q, want one 400", out)
		}
		for i := 0; m.request(i) != ""; i++ {
			if strings.Contains(m.request(i), "smuggled") {
				t.Fatalf("the member received %q", m.request(i))
			}
		}
	})
}

// TestH1ConnectionSemantics: pipelining, HTTP/1.0 keep-alive and close,
// 100-continue, HEAD, and chunked responses of unknown length.
func TestH1ConnectionSemantics(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	m := newRawMember(t, func(n int, r *http.Request) (string, bool) {
		switch r.URL.Path {
		case "/stream":
			return "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nstreamed", true
		case "/head":
			return "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", false
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	h.mustApply(oneListener("", m.spec()))
	addr := h.addr("127.0.0.1:0")
	get := func(path, extra string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: site.example\r\n" + extra + "\r\n"
	}
	cases := []struct {
		name, req string
		want      []string // in order
		responses int
	}{
		{"pipelined", get("/1", "") + get("/2", "") + get("/3", "Connection: close\r\n"), []string{"200 OK", "ok", "200 OK", "ok", "200 OK", "Connection: close", "ok"}, 3},
		{"HTTP/1.0 closes", "GET / HTTP/1.0\r\n\r\n" + get("/after", ""), []string{"200 OK", "Connection: close", "ok"}, 1},
		{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + get("/2", "Connection: close\r\n"), []string{"Connection: keep-alive", "ok", "200 OK", "ok"}, 2},
		{"100-continue", "POST /p HTTP/1.1\r\nHost: site.example\r\nExpect: 100-continue\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc", []string{"100 Continue", "200 OK", "ok"}, 2},
		{"HEAD keeps the length, sends no body", "HEAD /head HTTP/1.1\r\nHost: site.example\r\n\r\n" + get("/2", "Connection: close\r\n"), []string{"Content-Length: 1000", "200 OK", "ok"}, 2},
		{"unknown length becomes chunked", get("/stream", "") + get("/2", "Connection: close\r\n"), []string{"Transfer-Encoding: chunked", "8\r\nstreamed\r\n0\r\n\r\n", "200 OK", "ok"}, 2},
		{"HTTP/1.0 unknown length ends with the close", "GET /stream HTTP/1.0\r\n\r\n", []string{"Connection: close", "\r\n\r\nstreamed"}, 1},
		{"leading empty lines", "\r\n\r\n" + get("/", "Connection: close\r\n"), []string{"200 OK", "ok"}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := rawTLS(t, h, addr, tc.req)
			rest := out
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("got %q: missing %q (in order)", out, w)
				}
				rest = rest[i+len(w):]
			}
			if n := strings.Count(out, "HTTP/1.1 "); n != tc.responses {
				t.Fatalf("got %d responses, want %d: %q", n, tc.responses, out)
			}
		})
	}
}
