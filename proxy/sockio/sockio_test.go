package sockio

import (
	"bytes"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func tcpPair(t *testing.T) (*net.TCPConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return pairOn(t, ln)
}

// pairOn connects to ln and returns the client side and the accepted
// connection; ln is closed.
func pairOn(t *testing.T, ln net.Listener) (*net.TCPConn, net.Conn) {
	t.Helper()
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return c.(*net.TCPConn), peer
}

// eventually polls cond for up to two seconds: a byte or FIN written by
// the peer reaches the socket a moment later.
func eventually(cond func() bool) bool {
	for range 200 {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// TestAliveSeesBytesAndCloses: a silent open socket is alive; one with
// unread bytes, or closed by its peer, is not — and the probe reads
// nothing (the byte is still there for a real read).
func TestAliveSeesBytesAndCloses(t *testing.T) {
	c, peer := tcpPair(t)
	p := NewProbe(c)
	if !p.Alive() {
		t.Fatal("a silent open socket is not alive")
	}
	_, _ = peer.Write([]byte("x"))
	if !eventually(func() bool { return !p.Alive() }) {
		t.Fatal("a socket with an unsolicited byte stays alive")
	}
	var b [1]byte
	if n, err := c.Read(b[:]); n != 1 || b[0] != 'x' || err != nil {
		t.Fatalf("the byte was consumed by the probe: %d %v", n, err)
	}
	if !p.Alive() {
		t.Fatal("alive again once the byte is read")
	}
	peer.Close()
	if !eventually(func() bool { return !p.Alive() }) {
		t.Fatal("a socket its peer closed stays alive")
	}
}

// TestWaitReturnsOnDataOrDeadline: Wait blocks until there is something to
// read and leaves it unread; with nothing, the read deadline ends it.
func TestWaitReturnsOnDataOrDeadline(t *testing.T) {
	c, peer := tcpPair(t)
	p := NewProbe(c)
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if err := p.Wait(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Wait on a silent socket: %v, want the deadline", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(50 * time.Millisecond)
		_, _ = peer.Write([]byte("hello"))
	}()
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	if n, _ := c.Read(b); string(b[:n]) != "hello" {
		t.Fatalf("after Wait read %q", b[:n])
	}
	if NewProbe(nil) != nil {
		t.Fatal("a probe of no socket")
	}
}

func TestFillTracker(t *testing.T) {
	ft := &FillTracker{R: bytes.NewReader([]byte("abcdef"))}
	buf := make([]byte, 4)
	if _, _ = ft.Read(buf); !ft.Full() {
		t.Error("a read that filled the buffer is not full")
	}
	if _, _ = ft.Read(buf); ft.Full() {
		t.Error("a short read is full")
	}
}

// TestListenKeepAlive checks that a connection accepted from Listen has
// the keep-alive settings net.Listen's connections get, inherited from the
// listening socket rather than set per connection.
func TestListenKeepAlive(t *testing.T) {
	ln, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, c := pairOn(t, ln)
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][3]int{
		"SO_KEEPALIVE":  {syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		"TCP_KEEPIDLE":  {syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, 15},
		"TCP_KEEPINTVL": {syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, 15},
		"TCP_KEEPCNT":   {syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, 9},
		"TCP_NODELAY":   {syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1},
	}
	for name, o := range want {
		var got int
		var gerr error
		if err := rc.Control(func(fd uintptr) { got, gerr = syscall.GetsockoptInt(int(fd), o[0], o[1]) }); err != nil {
			t.Fatal(err)
		}
		if gerr != nil || got != o[2] {
			t.Errorf("accepted connection: %s = %d (%v), want %d", name, got, gerr, o[2])
		}
	}
}

func TestRearm(t *testing.T) {
	var r Rearm
	t0 := time.Unix(1000, 0)
	const timeout = 8 * time.Second
	for _, step := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {999 * time.Millisecond, false}, {time.Second, true}, {1500 * time.Millisecond, false}, {2 * time.Second, true}} {
		if got := r.Due(t0.Add(step.at), timeout); got != step.want {
			t.Errorf("Due at +%v = %v, want %v", step.at, got, step.want)
		}
	}
	r.Reset()
	if !r.Due(t0.Add(2*time.Second), timeout) {
		t.Error("Due right after Reset = false, want true")
	}
	r.Armed(t0.Add(5 * time.Second))
	if r.Due(t0.Add(5500*time.Millisecond), timeout) {
		t.Error("Due 0.5 s after Armed = true, want false")
	}
	if r.Due(t0.Add(time.Hour), 0) {
		t.Error("Due with no timeout = true, want false")
	}
}
