package udprelay

import (
	"net"
	"testing"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// BenchmarkRelay: one query and its answer per iteration, on one flow,
// through the relay and, beside it, straight to the member: the relay's
// cost per round trip is the ratio of the two (run with -cpu and compare
// CPU with -benchtime, on a quiet machine).
func BenchmarkRelay(b *testing.B) {
	echo := tu.UDPEcho(b, "m")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	r := New(pc, &Spec{Listener: "bench", Pool: "p", Algorithm: RoundRobin,
		Members: []Member{{Label: "m", Addr: echo.LocalAddr().String(), Weight: 1}}}, Options{})
	defer r.Close()
	for _, target := range []struct {
		name string
		addr net.Addr
	}{{"direct", echo.LocalAddr()}, {"relayed", r.Addr()}} {
		b.Run(target.name, func(b *testing.B) {
			conn, err := net.DialUDP("udp", nil, target.addr.(*net.UDPAddr))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			q, buf := make([]byte, 64), make([]byte, 2048)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := conn.Write(q); err != nil {
					b.Fatal(err)
				}
				if _, err := conn.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
