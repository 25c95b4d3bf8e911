package netplug

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"testing"

	"github.com/vishvananda/netns"
)

// TestListenAndDialInsideTheNamespace: a namespace the Plugger creates has
// its loopback up, and its sockets live there: a listener on 127.0.0.1
// in it is reached by Plugger.Dial and not from the process's namespace.
func TestListenAndDialInsideTheNamespace(t *testing.T) {
	p := testPlugger(t)
	ln, err := p.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serveAccept(ln)
	c, err := p.Dial(context.Background(), &net.Dialer{}, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial inside the namespace: %v", err)
	}
	c.Close()
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("the namespace's listener was reached from the process's namespace")
	}
}

// testPlugger is a Plugger on a namespace the test makes and deletes.
func testPlugger(b testing.TB) *Plugger {
	r := make([]byte, 3)
	_, _ = rand.Read(r)
	name := "tt-bench-" + hex.EncodeToString(r)
	b.Cleanup(func() { _ = netns.DeleteNamed(name) })
	return New(Options{Namespace: name})
}

func serveAccept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// BenchmarkDial compares a member dial from the amphora namespace
// (Plugger.Dial: a locked thread enters the namespace for the socket)
// with a plain dial, both to a loopback listener in their own namespace.
// Compare the two ns/op side by side: the difference is what the
// namespace costs each new member connection.
func BenchmarkDial(b *testing.B) {
	p := testPlugger(b)
	nsLn, err := p.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer nsLn.Close()
	go serveAccept(nsLn)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go serveAccept(ln)
	var d net.Dialer
	ctx := context.Background()
	b.Run("namespace", func(b *testing.B) {
		for b.Loop() {
			c, err := p.Dial(ctx, &d, "tcp", nsLn.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
}
