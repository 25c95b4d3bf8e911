package file

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/youmark/pkcs8"

	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
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

// TestWatchDirsFindsSymlinksByListing: with many files in a directory the
// symlinks among them are found from one listing, and their targets'
// directories are watched, as with few files (one lstat each).
func TestWatchDirsFindsSymlinksByListing(t *testing.T) {
	for _, n := range []int{5, 40} {
		dir, target := t.TempDir(), t.TempDir()
		files := map[string]bool{}
		for i := range n {
			p := filepath.Join(dir, fmt.Sprintf("c%02d.pem", i))
			if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			files[p] = true
		}
		link := filepath.Join(dir, "link.pem")
		if err := os.WriteFile(filepath.Join(target, "real.pem"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(target, "real.pem"), link); err != nil {
			t.Fatal(err)
		}
		files[link] = true
		dirs := watchDirs(files)
		realTarget, _ := filepath.EvalSymlinks(target)
		if !dirs[dir] || !dirs[realTarget] || len(dirs) > 3 {
			t.Errorf("%d files: watching %v, want %s and the link's target %s", n+1, dirs, dir, realTarget)
		}
	}
}

// TestReadWithMeta: the direct system-call read returns what os.ReadFile
// does, also for a file whose size stat reports as 0 (/proc), and errors
// that name the path and keep their kind.
func TestReadWithMeta(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "site.pem")
	want := bytes.Repeat([]byte("0123456789abcdef"), 300)
	if err := os.WriteFile(p, want, 0o600); err != nil {
		t.Fatal(err)
	}
	got, meta, err := readWithMeta(p)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, err %v; want %d bytes", len(got), err, len(want))
	}
	if meta != statOf(p) {
		t.Fatalf("metadata %+v, stat says %+v", meta, statOf(p))
	}
	got, _, err = readWithMeta("/proc/self/status")
	if err != nil || !bytes.Contains(got, []byte("\nPid:")) {
		t.Fatalf("/proc/self/status: %q, %v", got, err)
	}
	if _, _, err := readWithMeta(filepath.Join(dir, "absent.pem")); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "absent.pem") {
		t.Fatalf("absent file: %v, want a not-exist error naming it", err)
	}
	if _, _, err := readWithMeta(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("directory: %v, want an error naming it", err)
	}
}

// TestSiblingPassphraseReadOnlyWhenNeeded: the optional PATH.pass beside a
// PEM is read (and then watched) only for an encrypted key; an
// unencrypted one neither opens nor tracks it.
func TestSiblingPassphraseReadOnlyWhenNeeded(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.CA(t, "ca")
	leaf, key := testutil.Leaf(t, ca, pki.ECDSAP256, "shop.example")
	encDER, err := pkcs8.MarshalPrivateKey(key, []byte("pw"), nil)
	if err != nil {
		t.Fatal(err)
	}
	plain := testutil.WriteFile(t, dir, "plain.pem", append(pki.CertPEM(leaf), testutil.KeyPEM(t, key)...))
	plainPass := testutil.WriteFile(t, dir, "plain.pass", []byte("unused\n"))
	enc := testutil.WriteFile(t, dir, "enc.pem", append(pki.CertPEM(leaf), pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: encDER})...))
	encPass := testutil.WriteFile(t, dir, "enc.pass", []byte("pw\n"))
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.watcher.Close()
	for _, p := range []string{plain, enc} {
		if _, err := m.Bundle(t.Context(), "file://"+p); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for p, want := range map[string]bool{plain: true, plainPass: false, enc: true, encPass: true} {
		if _, read := m.digests[p]; read != want {
			t.Errorf("%s: read and tracked = %v, want %v", filepath.Base(p), read, want)
		}
	}
}

// TestUnchangedFilesAreNotRead: a reference whose files keep their
// metadata is served from the cache without reading them; a changed file,
// and a named file appearing beside Octavia's layout, are read again.
func TestUnchangedFilesAreNotRead(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.CA(t, "ca")
	c1, k1 := testutil.Leaf(t, ca, pki.ECDSAP256, "one.example")
	c2, k2 := testutil.Leaf(t, ca, pki.ECDSAP256, "two.example")
	site := testutil.WriteFile(t, dir, "site.pem", append(pki.CertPEM(c1), testutil.KeyPEM(t, k1)...))
	testutil.WriteFile(t, dir, "amp.crt", pki.CertPEM(c1))
	testutil.WriteFile(t, dir, "amp.key", testutil.KeyPEM(t, k1))
	m, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.watcher.Close()
	get := func(ref string) (*certs.Bundle, int) {
		t.Helper()
		m.mu.Lock()
		before := m.reads
		m.mu.Unlock()
		b, err := m.Bundle(t.Context(), ref)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		return b, m.reads - before
	}
	for _, ref := range []string{"file://" + site, "file://" + dir + "/amp"} {
		first, n := get(ref)
		if n == 0 {
			t.Fatalf("%s: first load read nothing", ref)
		}
		again, n := get(ref)
		if n != 0 || again != first {
			t.Fatalf("%s: unchanged files read %d times (same bundle: %v), want served from the cache", ref, n, again == first)
		}
	}
	if err := os.WriteFile(site, append(pki.CertPEM(c2), testutil.KeyPEM(t, k2)...), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, n := get("file://" + site); n == 0 || b.Names[0] != "two.example" {
		t.Fatalf("changed file: read %d files, serves %v", n, b.Names)
	}
	// The named path appearing takes precedence over Octavia's layout.
	testutil.WriteFile(t, dir, "amp", append(pki.CertPEM(c2), testutil.KeyPEM(t, k2)...))
	if b, n := get("file://" + dir + "/amp"); n == 0 || b.Names[0] != "two.example" {
		t.Fatalf("named file appeared: read %d files, serves %v", n, b.Names)
	}
}
