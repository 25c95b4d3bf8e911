package sockio

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"time"
)

// Keep-alive probing of client connections, as Go's default for accepted
// connections: the first probe after 15 s of silence, then every 15 s,
// the connection dropped after 9 unanswered.
const (
	keepAliveIdle     = 15 * time.Second
	keepAliveInterval = 15 * time.Second
	keepAliveCount    = 9
)

// ListenConfig is the configuration of client-facing TCP listeners:
// accepted connections probe idle peers with TCP keep-alives, as
// net.Listen's do, for one system call per connection instead of five.
// The options are set once on the listening socket, and Linux gives every
// accepted socket the listener's keep-alive settings, so Go's own four
// setsockopt calls per accepted connection are skipped (only TCP_NODELAY
// remains, as haproxy has). control, if not nil, runs on the socket first
// (the amphora's IP_FREEBIND).
func ListenConfig(control func(network, address string, c syscall.RawConn) error) net.ListenConfig {
	return net.ListenConfig{KeepAlive: -1, Control: func(network, address string, c syscall.RawConn) error {
		if control != nil {
			if err := control(network, address, c); err != nil {
				return err
			}
		}
		return setKeepAlive(c)
	}}
}

// Listen binds a client-facing TCP listener configured by ListenConfig.
func Listen(network, addr string) (net.Listener, error) {
	lc := ListenConfig(nil)
	return lc.Listen(context.Background(), network, addr)
}

func setKeepAlive(c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		for _, o := range []struct {
			level, name, value int
			what               string
		}{
			{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1, "SO_KEEPALIVE"},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, int(keepAliveIdle / time.Second), "TCP_KEEPIDLE"},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, int(keepAliveInterval / time.Second), "TCP_KEEPINTVL"},
			{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveCount, "TCP_KEEPCNT"},
		} {
			if err := syscall.SetsockoptInt(int(fd), o.level, o.name, o.value); err != nil {
				serr = fmt.Errorf("setting %s on the listening socket: %w", o.what, err)
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}
