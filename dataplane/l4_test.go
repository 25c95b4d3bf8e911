package dataplane_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/terminator-proxy/terminator/config"
	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
)

// tcpMember answers each connection with handle, until the test ends.
func tcpMember(t *testing.T, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); handle(c) }()
		}
	}()
	return ln.Addr().String()
}

func l4Config(protocol, poolProtocol string, members ...string) string {
	var ms []string
	for _, m := range members {
		host, port, _ := net.SplitHostPort(m)
		ms = append(ms, fmt.Sprintf("{address: %s, protocol_port: %s}", host, port))
	}
	return fmt.Sprintf("listeners:\n  - {name: l4, protocol: %s, bind: 127.0.0.1:0, default_pool: p}\npools:\n  - {name: p, protocol: %s, members: [%s]}\n",
		protocol, poolProtocol, strings.Join(ms, ", "))
}

// TestTCPListenerRelaysBytes: a TCP listener relays bytes both ways and
// keeps each direction open until its sender half-closes it: the member
// answers only after the client's half-close reached it.
func TestTCPListenerRelaysBytes(t *testing.T) {
	h := newHarness(t)
	// The member reads until the client half-closes, then answers with
	// what it read, reversed, and closes.
	member := tcpMember(t, func(c net.Conn) {
		data, _ := io.ReadAll(c)
		for i, j := 0, len(data)-1; i < j; i, j = i+1, j-1 {
			data[i], data[j] = data[j], data[i]
		}
		c.Write(data)
	})
	h.mustApply(l4Config("TCP", "TCP", member))
	addr := h.addr("127.0.0.1:0")
	for i := range 5 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "hello %d", i)
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		c.Close()
		if want := reverse(fmt.Sprintf("hello %d", i)); err != nil || string(got) != want {
			t.Fatalf("connection %d: %q %v; want %q", i, got, err, want)
		}
	}
}

func reverse(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

// TestTCPListenerRedispatchesAndSendsProxy: a member that refuses is
// replaced by another, and a PROXYV2 pool's members learn the client's
// address from the header terminator sends first.
func TestTCPListenerRedispatchesAndSendsProxy(t *testing.T) {
	h := newHarness(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close() // connecting to it is refused
	seen := make(chan string, 10)
	member := tcpMember(t, func(c net.Conn) {
		pc := proxyproto.NewConn(c)
		br := bufio.NewReader(pc)
		line, _ := br.ReadString('\n')
		src := "no PROXY header"
		if h := pc.ProxyHeader(); h != nil {
			src = h.SourceAddr.String()
		}
		seen <- src
		fmt.Fprintf(pc, "echo %s", line)
	})
	h.mustApply(l4Config("TCP", "PROXYV2", dead, member))
	addr := h.addr("127.0.0.1:0")
	for i := range 4 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "line %d\n", i)
		got, _ := io.ReadAll(c)
		if string(got) != fmt.Sprintf("echo line %d\n", i) {
			t.Fatalf("connection %d: %q (the refusing member was not replaced?)", i, got)
		}
		if src := <-seen; src != c.LocalAddr().String() {
			t.Fatalf("the member saw the client as %q; want %s", src, c.LocalAddr())
		}
		c.Close()
	}
}

// TestHTTPSPassThrough: an HTTPS listener passes TLS through: the client
// completes its handshake with the member's own certificate, which
// terminator never holds, and a reload does not cut open connections.
func TestHTTPSPassThrough(t *testing.T) {
	h := newHarness(t)
	ca := tu.CA(t, "member CA")
	leaf, key := tu.Leaf(t, ca, pki.ECDSAP256, "backend.example")
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Raw}, PrivateKey: key}}}
	member := tcpMember(t, func(c net.Conn) {
		tc := tls.Server(c, cfg)
		br := bufio.NewReader(tc)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			io.WriteString(tc, "tls:"+line)
		}
	})
	h.mustApply(l4Config("HTTPS", "HTTPS", member))
	addr := h.addr("127.0.0.1:0")
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: tu.Pool(ca), ServerName: "backend.example"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.ConnectionState().PeerCertificates[0].Equal(leaf) {
		t.Fatal("the client did not get the member's certificate")
	}
	br := bufio.NewReader(c)
	ask := func(s string) {
		t.Helper()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, s+"\n")
		if got, err := br.ReadString('\n'); err != nil || got != "tls:"+s+"\n" {
			t.Fatalf("%q: %q %v", s, got, err)
		}
	}
	ask("before")
	h.mustApply(strings.Replace(l4Config("HTTPS", "HTTPS", member), "protocol_port", "weight: 2, protocol_port", 1))
	ask("after a reload")
}

// TestAdditionalBinds: a listener with additional binds (Octavia's
// additional VIPs) serves the same route on every address, and a reload
// that drops one closes that address only.
func TestAdditionalBinds(t *testing.T) {
	h := newHarness(t)
	member := tcpMember(t, func(c net.Conn) { io.WriteString(c, "same route") })
	host, port, _ := net.SplitHostPort(member)
	free := func() string {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		return ln.Addr().String()
	}
	a, b := free(), free()
	cfg := func(binds string) string {
		return fmt.Sprintf("listeners:\n  - {name: l4, protocol: TCP, bind: %s, additional_binds: [%s], default_pool: p}\npools:\n  - {name: p, members: [{address: %s, protocol_port: %s}]}\n", a, binds, host, port)
	}
	h.mustApply(cfg(b))
	for _, addr := range []string{a, b} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		got, _ := io.ReadAll(c)
		c.Close()
		if string(got) != "same route" {
			t.Fatalf("%s: %q", addr, got)
		}
	}
	h.mustApply(cfg(""))
	deadline := time.Now().Add(3 * time.Second) // the removed socket closes as it drains
	for {
		c, err := net.Dial("tcp", b)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the dropped additional bind still accepts")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, err := config.Parse([]byte(cfg(a))); err == nil || !strings.Contains(err.Error(), "additional_binds[0]: address "+a+" is already bound") {
		t.Fatalf("an additional bind equal to the bind: %v", err)
	}
}

// TestTCPListenerCutsSilentPeers: a client that neither sends nor reads
// while the member floods it is cut off after timeout_client_data, so a
// stalled reader cannot hold a connection and its goroutines for ever.
func TestTCPListenerCutsSilentPeers(t *testing.T) {
	h := newHarness(t)
	stop := make(chan struct{})
	defer close(stop)
	member := tcpMember(t, func(c net.Conn) {
		chunk := make([]byte, 64<<10)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	h.mustApply(strings.Replace(l4Config("TCP", "TCP", member), "default_pool: p}", "default_pool: p, timeout_client_data: 300, timeout_member_data: 300}", 1))
	c, err := net.Dial("tcp", h.addr("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4096)
	active := func() float64 { return promtest.ToFloat64(h.mx.ConnectionsActive.WithLabelValues("l4")) }
	deadline := time.Now().Add(2 * time.Second)
	for active() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	deadline = time.Now().Add(5 * time.Second)
	for active() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a client that stopped reading still holds its relay")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
