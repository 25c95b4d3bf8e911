package netplug

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"syscall"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/terminator-proxy/terminator/proxy/sockio"
)

// inNamespace runs f on an OS thread switched into the amphora namespace
// and returns its error: sockets f creates belong to that namespace for
// their whole life. The thread returns to its namespace afterwards, or,
// if it cannot, is never unlocked and so dies with its goroutine instead
// of serving others.
func (p *Plugger) inNamespace(f func() error) error {
	ns, err := p.namespace()
	if err != nil {
		return err
	}
	defer ns.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("entering namespace %s: %w", p.o.Namespace, err)
			return
		}
		ferr := f()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// freebind lets a listener bind a VIP the amphora does not hold yet: in
// ACTIVE_STANDBY the standby binds the VIP keepalived will move to it.
func freebind(network, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if network == "tcp6" || network == "udp6" {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// Listen binds addr inside the amphora namespace (created if missing),
// whether or not the address is plugged yet.
func (p *Plugger) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := p.inNamespace(func() (err error) {
		lc := sockio.ListenConfig(freebind)
		ln, err = lc.Listen(context.Background(), network, addr)
		return err
	})
	return ln, err
}

// ListenPacket binds a UDP listener's addr inside the amphora namespace,
// whether or not the address is plugged yet.
func (p *Plugger) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := p.inNamespace(func() (err error) {
		lc := net.ListenConfig{Control: freebind}
		pc, err = lc.ListenPacket(context.Background(), network, addr)
		return err
	})
	return pc, err
}

// Start starts cmd inside the amphora namespace (keepalived runs there,
// beside the VIP interface it manages).
func (p *Plugger) Start(cmd *exec.Cmd) error {
	return p.inNamespace(cmd.Start)
}

// Dial connects from inside the amphora namespace, where the member
// networks are, with d's settings.
func (p *Plugger) Dial(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := p.inNamespace(func() (err error) {
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}
