package admin

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestEndpoints(t *testing.T) {
	var notReady error = errors.New("draining")
	h := Handler(prometheus.NewRegistry(), func() error { return notReady }, false)
	get := func(path string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code
	}
	if get("/healthz") != 200 || get("/metrics") != 200 {
		t.Fatal("healthz or metrics not served")
	}
	if get("/readyz") != http.StatusServiceUnavailable {
		t.Fatal("readyz ignored the readiness error")
	}
	notReady = nil
	if get("/readyz") != 200 {
		t.Fatal("readyz not 200 when ready")
	}
	if get("/debug/pprof/") != 404 {
		t.Fatal("pprof served without being enabled")
	}
	rec := httptest.NewRecorder()
	Handler(prometheus.NewRegistry(), func() error { return nil }, true).ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/", nil))
	if rec.Code != 200 {
		t.Fatalf("pprof index: %d", rec.Code)
	}
}
