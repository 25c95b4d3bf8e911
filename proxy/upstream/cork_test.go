package upstream

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestCorkedConnKeepsOrderAndFails: writes from many goroutines arrive
// whole and each writer's bytes in order; after the peer is gone a write
// fails rather than vanishing.
func TestCorkedConnKeepsOrderAndFails(t *testing.T) {
	a, b := net.Pipe()
	c := newCorkedConn(a)
	const writers, rounds = 8, 200
	var got bytes.Buffer
	read := make(chan error, 1)
	go func() {
		_, err := io.CopyN(&got, b, writers*rounds*3)
		read <- err
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				if _, err := c.Write([]byte{byte('a' + w), byte(i), '.'}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	next := make([]int, writers)
	data := got.Bytes()
	for i := 0; i < len(data); i += 3 {
		w := int(data[i] - 'a')
		if data[i+1] != byte(next[w]) || data[i+2] != '.' {
			t.Fatalf("writer %d: record %d out of order or torn at byte %d", w, next[w], i)
		}
		next[w]++
	}
	b.Close()
	var err error
	for range 2000 { // the failure surfaces once the flusher has tried
		if _, err = c.Write([]byte("x")); err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err == nil {
		t.Fatal("writes to a closed peer kept succeeding")
	}
	c.Close()
	if _, err := c.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) && !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
}

// TestCorkedConnCloseWritesWhatIsQueued: bytes written just before Close
// (an HTTP/2 GOAWAY, say) reach the peer before the connection ends.
func TestCorkedConnCloseWritesWhatIsQueued(t *testing.T) {
	for range 50 { // the flusher may or may not have taken the bytes yet
		a, b := net.Pipe()
		c := newCorkedConn(a)
		got := make(chan []byte, 1)
		go func() {
			data, _ := io.ReadAll(b)
			got <- data
		}()
		_, _ = c.Write([]byte("first;"))
		_, _ = c.Write([]byte("last"))
		c.Close()
		if data := <-got; string(data) != "first;last" {
			t.Fatalf("the peer read %q before the close, want %q", data, "first;last")
		}
	}
}
