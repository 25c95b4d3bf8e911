package file

import (
	"fmt"
	"testing"
)

// TestRescanBatchesCoverEveryFile: with more files than one rescan checks,
// consecutive rescans walk them all once per pass and start over; a new
// file joins the walk.
func TestRescanBatchesCoverEveryFile(t *testing.T) {
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.watcher.Close()
	const n = 2*rescanBatch + 500
	for i := range n {
		m.digests[fmt.Sprintf("/certs/%05d.pem", i)] = fileState{}
	}
	m.orderStale = true
	seen := map[string]int{}
	for range 3 {
		b := m.nextBatch()
		if len(b) > rescanBatch {
			t.Fatalf("a rescan checks %d files, more than %d", len(b), rescanBatch)
		}
		for _, p := range b {
			seen[p]++
		}
	}
	if len(seen) != n {
		t.Fatalf("one pass checked %d of %d files", len(seen), n)
	}
	if b := m.nextBatch(); b[0] != "/certs/00000.pem" {
		t.Fatalf("the next pass starts at %s", b[0])
	}
	m.digests["/certs/new.pem"] = fileState{}
	m.orderStale = true
	found := false
	for range 3 {
		for _, p := range m.nextBatch() {
			found = found || p == "/certs/new.pem"
		}
	}
	if !found {
		t.Fatal("a file read after the walk began is never checked")
	}
}
