package dataplane_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestAlgorithmsEndToEnd: LEAST_CONNECTIONS sends most requests to the
// member that answers fast while a slow one holds its connections, and
// SOURCE_IP keeps one client on one member, across a reload.
func TestAlgorithmsEndToEnd(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	var slowHits, fastHits atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slowHits.Add(1)
		time.Sleep(200 * time.Millisecond)
		io.WriteString(w, "slow")
	}))
	defer slow.Close()
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fastHits.Add(1)
		io.WriteString(w, "fast")
	}))
	defer fast.Close()
	pool := func(alg string) string {
		return oneListener("", member(t, slow.URL)+", "+member(t, fast.URL)) + "    lb_algorithm: " + alg + "\n"
	}
	h.mustApply(pool("LEAST_CONNECTIONS"))
	url := "https://" + h.addr("127.0.0.1:0") + "/"
	c := h.client("site.example", false)
	var wg sync.WaitGroup
	deadline := time.Now().Add(1500 * time.Millisecond)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				resp, err := c.Get(url)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	t.Logf("LEAST_CONNECTIONS: slow member %d requests, fast member %d", slowHits.Load(), fastHits.Load())
	if fastHits.Load() < 10*slowHits.Load() {
		t.Fatalf("least connections did not favour the fast member: slow %d, fast %d", slowHits.Load(), fastHits.Load())
	}

	h.mustApply(pool("SOURCE_IP"))
	body := func() string {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	first := body()
	for i := range 10 {
		if i == 5 {
			h.mustApply(pool("SOURCE_IP")) // a reload keeps the mapping
		}
		if got := body(); got != first {
			t.Fatalf("request %d from the same client went to %q, first to %q", i, got, first)
		}
	}
}

// TestDrainMemberFinishesInFlight: admin_state_up false takes a member
// out for new requests while its request in progress completes.
func TestDrainMemberFinishesInFlight(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	started := make(chan string, 2)
	mk := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				started <- name
				time.Sleep(400 * time.Millisecond)
			}
			io.WriteString(w, name)
		}))
	}
	a, b := mk("a"), mk("b")
	defer a.Close()
	defer b.Close()
	cfg := func(drained string) string {
		m := func(name string, srv *httptest.Server) string {
			if name == drained {
				return strings.TrimSuffix(member(t, srv.URL), "}") + ", admin_state_up: false}"
			}
			return member(t, srv.URL)
		}
		return oneListener("", m("a", a)+", "+m("b", b))
	}
	h.mustApply(cfg(""))
	url := "https://" + h.addr("127.0.0.1:0")
	c := h.client("site.example", false)
	get := func(path string) string {
		resp, err := c.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	done := make(chan string, 1)
	go func() { done <- get("/slow") }()
	busy := <-started
	h.mustApply(cfg(busy)) // drain the member while its request runs
	for range 5 {
		if got := get("/"); got == busy {
			t.Fatalf("the drained member %s took a new request", busy)
		}
	}
	if got := <-done; got != busy {
		t.Fatalf("the in-flight request on the drained member got %q, want %q", got, busy)
	}
}
