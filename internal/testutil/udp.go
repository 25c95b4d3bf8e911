package testutil

import (
	"net"
	"strings"
	"testing"
	"time"
)

// UDPEcho starts a DNS-like UDP member on loopback that answers each
// datagram with its name, a colon and the payload. Closing the returned
// socket kills it (the port then refuses).
func UDPEcho(t testing.TB, name string) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(name+":"), buf[:n]...), from)
		}
	}()
	t.Cleanup(func() { pc.Close() })
	return pc
}

// UDPAsk sends q on conn (connected to a UDP listener) and returns the
// name of the UDPEcho member that answered, resending up to attempts times
// 300 ms apart as a DNS client does; "" when nothing answered.
func UDPAsk(t testing.TB, conn net.Conn, q string, attempts int) string {
	t.Helper()
	buf := make([]byte, 2048)
	for range attempts {
		conn.Write([]byte(q))
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := conn.Read(buf)
		if err != nil {
			continue
		}
		name, payload, _ := strings.Cut(string(buf[:n]), ":")
		if payload != q {
			t.Fatalf("answer %q to %q", buf[:n], q)
		}
		return name
	}
	return ""
}
