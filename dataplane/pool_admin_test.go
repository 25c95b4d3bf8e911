package dataplane_test

import (
	"io"
	"net/http"
	"testing"
)

// TestDisabledPoolServesNothing: a pool with admin_state_up false is not
// served, as Octavia renders no backend for it: as a listener's default
// pool the answer is 503, and a REDIRECT_TO_POOL policy naming it is
// skipped. Before the fix the disabled pool answered 200.
func TestDisabledPoolServesNothing(t *testing.T) {
	h, m, addr := okListener(t)
	other := newRawMember(t, func(int, *http.Request) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nother", false
	})
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := h.client("site.example", false).Get("https://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	policy := `    l7policies:
      - {action: REDIRECT_TO_POOL, position: 1, redirect_pool: other, rules: [{type: PATH, compare_type: STARTS_WITH, value: /other}]}`
	cfg := func(appUp, otherUp string) string {
		return oneListener(policy, m.spec()) + "    admin_state_up: " + appUp + "\n  - name: other\n    admin_state_up: " + otherUp + "\n    members: [" + other.spec() + "]\n"
	}
	h.mustApply(cfg("false", "true"))
	if code, _ := get("/"); code != http.StatusServiceUnavailable {
		t.Fatalf("disabled default pool: %d, want 503", code)
	}
	if code, body := get("/other"); code != 200 || body != "other" {
		t.Fatalf("enabled redirect pool: %d %q", code, body)
	}
	h.mustApply(cfg("true", "false"))
	if code, body := get("/other"); code != 200 || body != "ok" {
		t.Fatalf("a policy to a disabled pool must be skipped (default pool answers): %d %q", code, body)
	}
	if m.conns.Load() == 0 {
		t.Fatal("the enabled default pool was never used")
	}
}
