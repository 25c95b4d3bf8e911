package dataplane_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// TestHealthMonitorTransitions: an HTTP monitor takes a failing member out
// after max_retries_down failures and back after max_retries successes; a
// backup takes over while no primary is up and gives back; a reload keeps
// the health state.
func TestHealthMonitorTransitions(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	var aHealthy, bHealthy atomic.Bool
	aHealthy.Store(true)
	bHealthy.Store(true)
	backend := func(name string, healthy *atomic.Bool) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				if !healthy.Load() {
					w.WriteHeader(503)
				}
				return
			}
			io.WriteString(w, name)
		}))
	}
	a, b := backend("a", &aHealthy), backend("b", &bHealthy)
	defer a.Close()
	defer b.Close()
	var spareHealthy atomic.Bool
	spareHealthy.Store(true)
	spare := backend("spare", &spareHealthy)
	defer spare.Close()
	yaml := oneListener("", member(t, a.URL)+", "+member(t, b.URL)+", "+
		"{name: spare, address: 127.0.0.1, protocol_port: "+portOf(t, spare.URL)+", backup: true}") +
		"    healthmonitor: {type: HTTP, delay: 1, timeout: 1, max_retries: 2, max_retries_down: 1, url_path: /healthz, expected_codes: \"200\"}\n"
	h.mustApply(yaml)
	c := h.client("site.example", false)
	url := "https://" + h.addr("127.0.0.1:0") + "/"
	who := func() string {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	only := func(want string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			seen := map[string]int{}
			for range 6 {
				seen[who()]++
			}
			if seen[want] == 6 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("want all requests on %s, got %v", want, seen)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	bHealthy.Store(false)
	only("a", 4*time.Second) // fall 1, delay 1s
	if v := promtest.ToFloat64(h.mx.MemberStatus.WithLabelValues("app", "127.0.0.1:"+portOf(t, b.URL), "DOWN")); v != 1 {
		t.Fatalf("member_status{DOWN} = %v", v)
	}
	// Reloads under load keep b DOWN: no request may reach it, none may fail.
	stop := make(chan struct{})
	var loopErr atomic.Value
	var served atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		lc := h.client("site.example", true)
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := lc.Get(url)
			if err != nil {
				loopErr.Store(err.Error())
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "a" {
				loopErr.Store(fmt.Sprintf("status %d from %q", resp.StatusCode, b))
				return
			}
			served.Add(1)
		}
	}()
	for range 5 {
		h.mustApply(yaml)
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	<-done
	if e := loopErr.Load(); e != nil {
		t.Fatalf("during reloads: %v", e)
	}
	if served.Load() == 0 {
		t.Fatal("the client loop sent nothing")
	}
	aHealthy.Store(false)
	only("spare", 4*time.Second) // no primary up: the backup takes over
	bHealthy.Store(true)
	only("b", 6*time.Second) // rise 2: b is back, the backup gives back
}

func portOf(t *testing.T, url string) string {
	_, port := tu.HostPort(t, url)
	return port
}
