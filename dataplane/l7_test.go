package dataplane_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestL7EndToEnd(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example", "old.example")
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "web") }))
	defer web.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "api") }))
	defer api.Close()
	h.mustApply(`
listeners:
  - name: web
    protocol: TERMINATED_HTTPS
    bind: 127.0.0.1:0
    default_tls_container_ref: file://{{dir}}/site.pem
    default_pool: web
    l7policies:
      - {action: REDIRECT_TO_POOL, position: 1, redirect_pool: api, rules: [{type: PATH, compare_type: STARTS_WITH, value: /api}]}
      - {action: REJECT, position: 2, rules: [{type: PATH, compare_type: STARTS_WITH, value: /api/admin}]}
      - {action: REDIRECT_PREFIX, position: 3, redirect_prefix: "https://new.example", redirect_http_code: 301,
         rules: [{type: HOST_NAME, compare_type: EQUAL_TO, value: old.example}]}
pools:
  - {name: web, members: [` + member(t, web.URL) + `]}
  - {name: api, members: [` + member(t, api.URL) + `]}
`)
	addr := h.addr("127.0.0.1:0")
	c := h.client("site.example", false)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	do := func(host, path string) (int, string, string) {
		req := newRequest(t, "GET", "https://"+addr+path, nil)
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get("Location")
	}
	if code, body, _ := do("site.example", "/index"); code != 200 || body != "web" {
		t.Fatalf("default pool: %d %q", code, body)
	}
	if code, body, _ := do("site.example", "/api/v1"); code != 200 || body != "api" {
		t.Fatalf("REDIRECT_TO_POOL: %d %q", code, body)
	}
	if code, body, _ := do("site.example", "/api/admin/x"); code != 403 || !strings.Contains(body, "rejected") {
		t.Fatalf("REJECT (position 2) must win over REDIRECT_TO_POOL (position 1): %d %q", code, body)
	}
	if code, _, loc := do("old.example", "/a/b?c=d"); code != 301 || loc != "https://new.example/a/b?c=d" {
		t.Fatalf("REDIRECT_PREFIX: %d %q", code, loc)
	}
}
