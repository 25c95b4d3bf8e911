package dataplane_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// sharedPort returns a loopback port free for both TCP and UDP.
func sharedPort(t *testing.T) string {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err == nil {
			pc.Close()
			return addr
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return ""
}

// TestUDPListener: a UDP listener beside a TCP one on the same port, two
// DNS-like members checked by UDP-CONNECT. A killed member is marked DOWN
// by its check and the traffic moves; a reload that changes the pool keeps
// the listener's socket; removing the listener frees the port.
func TestUDPListener(t *testing.T) {
	h := newHarness(t)
	a, b := tu.UDPEcho(t, "a"), tu.UDPEcho(t, "b")
	web := tu.EchoBackend(t)
	_, webPort := tu.HostPort(t, web.URL)
	bind := sharedPort(t)
	cfg := func(members string) string {
		return fmt.Sprintf(`listeners:
  - {name: dns, protocol: UDP, bind: %q, default_pool: dns}
  - {name: web, protocol: TCP, bind: %q, default_pool: web}
pools:
  - {name: web, protocol: TCP, members: [{address: 127.0.0.1, protocol_port: %s}]}
  - name: dns
    protocol: UDP
    healthmonitor: {type: UDP-CONNECT, delay: 1, timeout: 1, max_retries: 1, max_retries_down: 1}
    members: [%s]
`, bind, bind, webPort, members)
	}
	member := func(name string, pc net.PacketConn, weight int) string {
		_, port, _ := net.SplitHostPort(pc.LocalAddr().String())
		return fmt.Sprintf("{name: %s, address: 127.0.0.1, protocol_port: %s, weight: %d}", name, port, weight)
	}
	h.mustApply(cfg(member("a", a, 1) + ", " + member("b", b, 1)))
	client := func() net.Conn {
		c, err := net.Dial("udp", bind)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	seen := map[string]int{}
	var clients []net.Conn
	for range 4 {
		c := client()
		clients = append(clients, c)
		seen[tu.UDPAsk(t, c, "q", 5)]++
	}
	if seen["a"] != 2 || seen["b"] != 2 {
		t.Fatalf("4 flows spread %v", seen)
	}
	if resp, err := (&net.Dialer{}).Dial("tcp", bind); err != nil {
		t.Fatalf("the TCP listener on the same port: %v", err)
	} else {
		resp.Close()
	}

	a.Close() // member a dies: its check marks it DOWN
	for deadline := time.Now().Add(5 * time.Second); promtest.ToFloat64(h.mx.MemberStatus.WithLabelValues("dns", "a", "DOWN")) != 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the UDP-CONNECT check never marked the killed member DOWN")
		}
	}
	for i := range 20 {
		if got := tu.UDPAsk(t, client(), fmt.Sprintf("n%d", i), 5); got != "b" {
			t.Fatalf("a new flow went to %q while a is DOWN", got)
		}
	}
	for _, c := range clients {
		if got := tu.UDPAsk(t, c, "again", 5); got != "b" {
			t.Fatalf("an old flow answered by %q after a died", got)
		}
	}

	// A reload with another member keeps the socket and the flows' client
	// addresses; b's weight 0 drains: old flows stay, new ones go to c.
	cpc := tu.UDPEcho(t, "c")
	h.mustApply(cfg(member("b", b, 0) + ", " + member("c", cpc, 1)))
	if got := tu.UDPAsk(t, clients[0], "kept", 5); got != "b" {
		t.Fatalf("a flow on a draining member moved to %q", got)
	}
	if got := tu.UDPAsk(t, client(), "new", 5); got != "c" {
		t.Fatalf("a new flow went to %q, not c", got)
	}

	// Removing the listener frees its UDP port at once.
	h.mustApply(fmt.Sprintf("listeners: [{name: web, protocol: TCP, bind: %q}]", bind))
	pc, err := net.ListenPacket("udp", bind)
	if err != nil {
		t.Fatalf("the removed UDP listener's port: %v", err)
	}
	pc.Close()
}
