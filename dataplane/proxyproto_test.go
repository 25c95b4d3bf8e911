package dataplane_test

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// TestProxyProtocolIn: a trusted source's PROXY header gives the client
// address (seen in X-Forwarded-For); a trusted source without a header and
// an untrusted source with one are refused.
func TestProxyProtocolIn(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	backend := tu.EchoBackend(t)
	h.mustApply(oneListener("    proxy_protocol_from: [127.0.0.1/32]\n    insert_headers: {X-Forwarded-For: \"true\"}", member(t, backend.URL)))
	addr := h.addr("127.0.0.1:0")
	request := func(from string, header *proxyproto.Header) (*tu.Echo, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 3 * time.Second}
		raw, err := d.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
		if header != nil {
			if _, err := header.WriteTo(raw); err != nil {
				return nil, err
			}
		}
		c := tls.Client(raw, &tls.Config{RootCAs: tu.Pool(h.ca), ServerName: "site.example", NextProtos: []string{"http/1.1"}})
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: site.example\r\n\r\n")); err != nil {
			return nil, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var e tu.Echo
		return &e, json.NewDecoder(resp.Body).Decode(&e)
	}
	client := &net.TCPAddr{IP: net.ParseIP("203.0.113.9"), Port: 5555}
	for _, v := range []byte{1, 2} {
		e, err := request("127.0.0.1", proxyproto.HeaderProxyFromAddrs(v, client, &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 443}))
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if got := e.Header.Get("X-Forwarded-For"); got != "203.0.113.9" {
			t.Fatalf("v%d: X-Forwarded-For %q, want the PROXY header's client", v, got)
		}
	}
	if _, err := request("127.0.0.1", nil); err == nil {
		t.Fatal("a trusted source without a PROXY header was served")
	}
	if _, err := request("127.0.0.2", proxyproto.HeaderProxyFromAddrs(1, client, client)); err == nil {
		t.Fatal("an untrusted source's PROXY header was accepted")
	}
}

// TestProxyProtocolOut: a PROXYV2 pool opens each member connection with a
// header naming the client.
func TestProxyProtocolOut(t *testing.T) {
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.RemoteAddr)
	}), ReadHeaderTimeout: 5 * time.Second}
	require := func(net.Addr) (proxyproto.Policy, error) { return proxyproto.REQUIRE, nil }
	go srv.Serve(&proxyproto.Listener{Listener: ln, Policy: require})
	defer srv.Close()
	yaml := oneListener("", fmt.Sprintf("{address: 127.0.0.1, protocol_port: %d}", ln.Addr().(*net.TCPAddr).Port))
	h.mustApply(yaml + "    protocol: PROXYV2\n")
	// The client connects from 127.0.0.2; terminator reaches the member
	// from 127.0.0.1, so only the PROXY header can name 127.0.0.2.
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: tu.Pool(h.ca), ServerName: "site.example"},
		DialContext:     (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for range 3 {
		resp, err := c.Get("https://" + h.addr("127.0.0.1:0") + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		host, _, _ := net.SplitHostPort(string(b))
		if resp.StatusCode != 200 || host != "127.0.0.2" {
			t.Fatalf("member saw %q (status %d)", b, resp.StatusCode)
		}
	}
}
