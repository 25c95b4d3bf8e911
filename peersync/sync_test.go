package peersync

import (
	"net"
	"sync"
	"testing"
	"time"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// table is a peer's persistence table in the test.
type table struct {
	mu sync.Mutex
	m  map[string]string
}

func (t *table) learn(e Entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[e.Pool+"/"+e.Key] = e.Addr
}

func (t *table) entries() []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Entry
	for k, v := range t.m {
		out = append(out, Entry{Pool: k[:1], Key: k[2:], Addr: v})
	}
	return out
}

func (t *table) get(k string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[k]
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func start(t *testing.T, local, peer, key string, tb *table) *Sync {
	t.Helper()
	s, err := Start(local, []string{peer}, Options{Key: []byte(key), Entries: tb.entries, Learn: tb.learn,
		Known: func(pool string) bool { return pool != "x" }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !f(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
	}
}

// TestPeersShareTheirTables: a change on one peer reaches the other; a
// restarted peer gets the whole table when it reconnects; entries of
// unknown pools are ignored; a peer with another key is not heard.
func TestPeersShareTheirTables(t *testing.T) {
	tu.NoLeaks(t)
	const key = "0123456789abcdef-shared"
	addrA, addrB := freeAddr(t), freeAddr(t)
	ta, tb := &table{m: map[string]string{}}, &table{m: map[string]string{}}
	a := start(t, addrA, addrB, key, ta)
	defer a.Close()
	b := start(t, addrB, addrA, key, tb)

	ta.learn(Entry{"p", "10.0.0.1", "m1:80"})
	a.Publish(Entry{"p", "10.0.0.1", "m1:80"})
	a.Publish(Entry{"x", "10.0.0.9", "evil:80"}) // a pool B does not serve
	eventually(t, "B never learned A's entry", func() bool { return tb.get("p/10.0.0.1") == "m1:80" })
	b.Publish(Entry{"p", "cookie-7", "m2:80"})
	tb.learn(Entry{"p", "cookie-7", "m2:80"})
	eventually(t, "A never learned B's entry", func() bool { return ta.get("p/cookie-7") == "m2:80" })
	if tb.get("x/10.0.0.9") != "" {
		t.Fatal("an entry for an unknown pool was applied")
	}

	// B restarts empty: A's whole table arrives when A reconnects.
	b.Close()
	tb2 := &table{m: map[string]string{}}
	b2 := start(t, addrB, addrA, key, tb2)
	eventually(t, "the restarted peer never got the table", func() bool {
		return tb2.get("p/10.0.0.1") == "m1:80" && tb2.get("p/cookie-7") == "m2:80"
	})
	b2.Close()

	// A peer with another key is not heard.
	tb3 := &table{m: map[string]string{}}
	b3 := start(t, addrB, addrA, "another-key-of-16-bytes", tb3)
	defer b3.Close()
	a.Publish(Entry{"p", "10.0.0.2", "m1:80"})
	time.Sleep(time.Second)
	if len(tb3.entries()) != 0 {
		t.Fatalf("a peer with another key learned %v", tb3.entries())
	}
}

// TestFramesAreBound: a frame too large or a garbled one ends the
// connection before anything is applied.
func TestFramesAreBound(t *testing.T) {
	f := &framer{key: []byte("0123456789abcdef")}
	var buf bytesBuffer
	if err := f.write(&buf, []Entry{{"p", "k", "a"}}); err != nil {
		t.Fatal(err)
	}
	frame := buf.b
	frame[len(frame)-1] ^= 1
	r := &framer{key: []byte("0123456789abcdef")}
	if _, err := r.read(&bytesBuffer{b: frame}); err == nil {
		t.Fatal("a tampered frame was accepted")
	}
	huge := []byte{0xff, 0xff, 0xff, 0xff}
	if _, err := (&framer{key: []byte("0123456789abcdef")}).read(&bytesBuffer{b: huge}); err == nil {
		t.Fatal("a 4 GiB frame length was accepted")
	}
}

type bytesBuffer struct{ b []byte }

func (w *bytesBuffer) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
func (w *bytesBuffer) Read(p []byte) (int, error) {
	if len(w.b) == 0 {
		return 0, net.ErrClosed
	}
	n := copy(p, w.b)
	w.b = w.b[n:]
	return n, nil
}
