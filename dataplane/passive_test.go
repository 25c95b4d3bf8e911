package dataplane_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"
)

func TestPassiveDetection(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
		io.WriteString(w, "failing")
	}))
	defer failing.Close()
	good := named(t, "good")[0]
	h.mustApply(oneListener("", member(t, failing.URL)+", "+member(t, good.URL)))
	c := h.client("site.example", false)
	url := "https://" + h.addr("127.0.0.1:0") + "/"
	body := func() string {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for range 20 { // round robin: ten 5xx answers from the failing member
		body()
	}
	for i := range 10 {
		if got := body(); !strings.HasPrefix(got, "good") {
			t.Fatalf("request %d after a burst of 5xx went to the failing member: %q", i, got)
		}
	}

	// Refused connections: after three the member is held out, so retries stop.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close()
	h.mustApply(strings.ReplaceAll(oneListener("", fmt.Sprintf("{address: 127.0.0.1, protocol_port: %d}, ", deadPort)+member(t, good.URL)), "app", "app2"))
	for range 20 {
		if got := body(); !strings.HasPrefix(got, "good") {
			t.Fatalf("got %q", got)
		}
	}
	if v := promtest.ToFloat64(h.mx.Retries.WithLabelValues("app2")); v > 3 {
		t.Fatalf("%v retries in 20 requests: the refusing member was not held out", v)
	}
}

func TestMemberMaxConnections(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	var inFlight, peak atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
		io.WriteString(w, "slow")
	}))
	defer slow.Close()
	other := named(t, "other")[0]
	h.mustApply(oneListener("", strings.TrimSuffix(member(t, slow.URL), "}")+", max_connections: 1}, "+member(t, other.URL)))
	c := h.client("site.example", false)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				resp, err := c.Get("https://" + h.addr("127.0.0.1:0") + "/")
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
	if peak.Load() != 1 {
		t.Fatalf("the member capped at 1 saw %d requests at once", peak.Load())
	}
}
