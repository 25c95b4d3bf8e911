package dataplane_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"
)

// named starts backends answering with their name; "app" ones also set
// the application's own session cookie, and report the cookies they got.
func named(t *testing.T, names ...string) []*httptest.Server {
	var out []*httptest.Server
	for _, n := range names {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := r.Cookie("JSESSIONID"); err != nil {
				http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: "sess-" + n})
			}
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s cookies=%s body=%q", n, r.Header.Get("Cookie"), body)
		}))
		t.Cleanup(srv.Close)
		out = append(out, srv)
	}
	return out
}

func TestSessionPersistence(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	bs := named(t, "m0", "m1", "m2")
	members := func(disabled int) string {
		var parts []string
		for i, b := range bs {
			m := strings.TrimSuffix(member(t, b.URL), "}") + fmt.Sprintf(", name: m%d, id: member-%d", i, i)
			if i == disabled {
				m += ", admin_state_up: false"
			}
			parts = append(parts, m+"}")
		}
		return strings.Join(parts, ", ")
	}
	for _, tc := range []struct{ kind, extra string }{
		{"HTTP_COOKIE", "{type: HTTP_COOKIE}"},
		{"APP_COOKIE", "{type: APP_COOKIE, cookie_name: JSESSIONID}"},
		{"SOURCE_IP", "{type: SOURCE_IP}"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			yaml := func(disabled int) string {
				return oneListener("", members(disabled)) + "    session_persistence: " + tc.extra + "\n"
			}
			h.mustApply(yaml(-1))
			c := h.client("site.example", false) // keeps cookies? no: we carry them by hand
			url := "https://" + h.addr("127.0.0.1:0") + "/"
			var cookies []*http.Cookie
			get := func() (string, string) {
				req := newRequest(t, "GET", url, nil)
				for _, ck := range cookies {
					req.AddCookie(ck)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				for _, ck := range resp.Cookies() {
					cookies = append(cookies, ck)
				}
				b, _ := io.ReadAll(resp.Body)
				name, rest, _ := strings.Cut(string(b), " ")
				return name, rest
			}
			first, _ := get()
			for range 8 {
				if got, seen := get(); got != first {
					t.Fatalf("persistence lost: %s then %s", first, got)
				} else if strings.Contains(seen, "SRV=") {
					t.Fatalf("terminator's own cookie reached the member: %s", seen)
				}
			}
			// The sticky member goes away: persistence yields.
			var idx int
			fmt.Sscanf(first, "m%d", &idx)
			h.mustApply(yaml(idx))
			if got, _ := get(); got == first {
				t.Fatalf("the request still went to the disabled member %s", first)
			}
		})
	}
}

func TestRetryRefusedConnection(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	live := named(t, "live")[0]
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close()
	h.mustApply(oneListener("", fmt.Sprintf("{address: 127.0.0.1, protocol_port: %d}, ", deadPort)+member(t, live.URL)))
	c := h.client("site.example", false)
	// A request whose body was not sent is redispatched too: two POSTs
	// under round robin, one first offered to the refusing member, both
	// reach the live one with their whole body.
	for i := range 2 {
		resp, err := c.Post("https://"+h.addr("127.0.0.1:0")+"/", "text/plain", strings.NewReader("payload"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "live") || !strings.HasSuffix(string(b), `body="payload"`) {
			t.Fatalf("POST %d: %d %q", i, resp.StatusCode, b)
		}
	}
	// Bodiless requests are redispatched: every GET succeeds.
	for i := range 10 {
		resp, err := c.Get("https://" + h.addr("127.0.0.1:0") + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "live") {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
	}
	// Retried until passive detection held the member out (3 failures).
	if v := promtest.ToFloat64(h.mx.Retries.WithLabelValues("app")); v < 1 || v > 3 {
		t.Fatalf("retries metric %v, want 1-3", v)
	}
}
