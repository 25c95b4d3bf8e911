package dataplane_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// TestHTTPSRedirectKeepsTheHost: an HTTP listener with https_redirect, and
// one with Octavia's form (a REDIRECT_PREFIX policy to "https://"), send
// each request to the same host, path and query over HTTPS; the port is
// kept out of the URL when it is 443; IPv6 hosts stay bracketed; a request
// without a Host is refused, never sent to "https:///". Checked with curl
// and with raw requests.
func TestHTTPSRedirectKeepsTheHost(t *testing.T) {
	h := newHarness(t)
	h.mustApply(`listeners:
  - {name: plain, protocol: HTTP, bind: "127.0.0.1:0", https_redirect: {port: 8443, code: 308}}
  - {name: std, protocol: HTTP, bind: "[::1]:0", https_redirect: {}}
  - name: octavia
    protocol: HTTP
    bind: "127.0.0.2:0"
    l7policies: [{action: REDIRECT_PREFIX, redirect_prefix: "https://", redirect_http_code: 301, rules: [{type: PATH, compare_type: STARTS_WITH, value: /}]}]
`)
	ask := func(addr, raw string) (int, string) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprint(c, raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location")
	}
	plain, std, octavia := h.addr("127.0.0.1:0"), h.addr("[::1]:0"), h.addr("127.0.0.2:0")
	for _, tc := range []struct {
		addr, host, path string
		code             int
		want             string
	}{
		{plain, "shop.example:8080", "/a/b?x=1&y=%20z", 308, "https://shop.example:8443/a/b?x=1&y=%20z"},
		{plain, "shop.example", "/", 308, "https://shop.example:8443/"},
		{std, "shop.example:80", "/cart", 301, "https://shop.example/cart"},
		{std, "[2001:db8::1]:8080", "/v6?q", 301, "https://[2001:db8::1]/v6?q"},
		{octavia, "www.example", "/x?y=z", 301, "https://www.example/x?y=z"},
	} {
		code, loc := ask(tc.addr, "GET "+tc.path+" HTTP/1.1\r\nHost: "+tc.host+"\r\nConnection: close\r\n\r\n")
		if code != tc.code || loc != tc.want {
			t.Errorf("%s%s: %d %q, want %d %q", tc.host, tc.path, code, loc, tc.code, tc.want)
		}
	}
	if code, loc := ask(plain, "GET /nohost HTTP/1.0\r\n\r\n"); code != 400 || loc != "" {
		t.Errorf("HTTP/1.0 without Host: %d %q, want 400", code, loc)
	}
	out, err := exec.Command("curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H", "Host: shop.example:8080",
		"http://"+plain+"/c?d=e").Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != "308 https://shop.example:8443/c?d=e" {
		t.Errorf("curl: %q", got)
	}
}
