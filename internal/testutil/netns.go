package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// TestNS makes a named network namespace the test owns and deletes
// (tests run as root).
func TestNS(t testing.TB, prefix string) (string, netns.NsHandle) {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	var ns netns.NsHandle
	var err error
	InNS(t, netns.None(), func() { ns, err = netns.NewNamed(name) })
	if err != nil {
		t.Fatalf("creating namespace %s (the test runs as root): %v", name, err)
	}
	t.Cleanup(func() { ns.Close(); _ = netns.DeleteNamed(name) })
	return name, ns
}

// InNS runs f on a thread in ns (or, with None, on a fresh locked thread
// whose namespace f may change): the thread is never unlocked, so it dies
// with the goroutine rather than serve others from ns. Processes f starts
// run in ns.
func InNS(t testing.TB, ns netns.NsHandle, f func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if ns.IsOpen() {
			if err := netns.Set(ns); err != nil {
				done <- err
				return
			}
		}
		f()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// HandleAt is a netlink handle on ns, closed when the test ends.
func HandleAt(t testing.TB, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// DialIn returns a dial function whose sockets are made in ns, for an
// http.Transport of a client that lives in a test's namespace; from, if
// given, is the source address.
func DialIn(ns netns.NsHandle, from ...net.IP) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		done := make(chan result, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			if err := netns.Set(ns); err != nil {
				done <- result{nil, err}
				return
			}
			var d net.Dialer
			if len(from) > 0 {
				d.LocalAddr = &net.TCPAddr{IP: from[0]}
			}
			c, err := d.DialContext(ctx, network, addr)
			done <- result{c, err}
		}()
		r := <-done
		return r.c, r.err
	}
}
