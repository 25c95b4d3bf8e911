package proxy

import (
	"bytes"
	"io"
	"math/rand"
	"net"
	"testing"
)

// chunkConn returns its data in reads of random sizes.
type chunkConn struct {
	net.Conn
	data []byte
	rng  *rand.Rand
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), 1+c.rng.Intn(3000))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// TestRecordConnHandsOneRecordPerRead: whatever the socket's chunking and
// the caller's buffer sizes, no Read crosses a record boundary and the
// stream comes through whole.
func TestRecordConnHandsOneRecordPerRead(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var stream []byte
	var ends []int // offsets where records end
	for i := 0; i < 300; i++ {
		n := []int{0, 1, 5, 300, 4096, 16384 + 256}[rng.Intn(6)]
		stream = append(stream, 23, 3, 3, byte(n>>8), byte(n))
		stream = append(stream, bytes.Repeat([]byte{byte(i)}, n)...)
		ends = append(ends, len(stream))
	}
	rc := &recordConn{Conn: &chunkConn{data: stream, rng: rng}}
	var got []byte
	next := 0
	for {
		p := make([]byte, 1+rng.Intn(20000))
		n, err := rc.Read(p)
		start := len(got)
		got = append(got, p[:n]...)
		for next < len(ends) && ends[next] <= start {
			next++
		}
		if next < len(ends) && len(got) > ends[next] {
			t.Fatalf("a read of %d bytes from %d crossed the record end at %d", n, start, ends[next])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, stream) {
		t.Fatalf("stream mangled: %d bytes in, %d out", len(stream), len(got))
	}
	if rc.pending() {
		t.Fatal("buffer still held after EOF")
	}
}
