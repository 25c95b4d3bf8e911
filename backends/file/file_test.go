package file_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"encoding/pem"
	"github.com/youmark/pkcs8"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/terminator-proxy/terminator/backends/file"
	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
)

func newManager(t *testing.T, rescan time.Duration) *file.Manager {
	t.Helper()
	testutil.NoLeaks(t)
	m, err := file.New(file.Options{Rescan: rescan, Debounce: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return m
}

func TestLayouts(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.CA(t, "ca")
	int1, _ := ca.NewIntermediate("int", pki.ECDSAP256)
	leaf, key := testutil.Leaf(t, int1, pki.ECDSAP256, "shop.example")
	keyPEM := testutil.KeyPEM(t, key)
	encDER, _ := pkcs8.MarshalPrivateKey(key, []byte("pw"), nil)
	encPEM := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: encDER})
	p12, _ := pkcs12.Modern.Encode(key, leaf, nil, "p12pass")

	testutil.WriteFile(t, dir, "combined.pem", append(append(pki.CertPEM(leaf), keyPEM...), pki.CertPEM(int1.Cert)...))
	testutil.WriteFile(t, dir, "split.crt", pki.CertPEM(leaf))
	testutil.WriteFile(t, dir, "split.key", encPEM)
	testutil.WriteFile(t, dir, "chain.pem", pki.CertPEM(int1.Cert))
	testutil.WriteFile(t, dir, "keypass", []byte("pw\n"))
	testutil.WriteFile(t, dir, "shop.p12", p12)
	testutil.WriteFile(t, dir, "shop.pass", []byte("p12pass\n"))
	// Octavia's local cert manager layout: <uuid>.crt .key .int .pass
	testutil.WriteFile(t, dir, "0b3e.crt", pki.CertPEM(leaf))
	testutil.WriteFile(t, dir, "0b3e.key", encPEM)
	testutil.WriteFile(t, dir, "0b3e.int", pki.CertPEM(int1.Cert))
	testutil.WriteFile(t, dir, "0b3e.pass", []byte("pw"))

	m := newManager(t, time.Hour)
	for _, ref := range []string{
		"file://" + dir + "/combined.pem",
		"file://" + dir + "/split.crt?key=" + dir + "/split.key&intermediates=" + dir + "/chain.pem&passphrase_file=" + dir + "/keypass",
		"file://" + dir + "/shop.p12",
		"file://" + dir + "/0b3e",
	} {
		b, err := m.Bundle(t.Context(), ref)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if !b.Leaf().Equal(leaf) {
			t.Fatalf("%s: wrong leaf", ref)
		}
		if ref != "file://"+dir+"/shop.p12" && len(b.Chain) != 1 {
			t.Fatalf("%s: chain has %d certificates, want 1", ref, len(b.Chain))
		}
	}
	sec, err := m.Secret(t.Context(), "file://"+dir+"/chain.pem")
	if err != nil || len(sec) == 0 {
		t.Fatalf("Secret: %v", err)
	}
}

func TestRefErrors(t *testing.T) {
	dir := t.TempDir()
	m := newManager(t, time.Hour)
	cases := map[string]error{
		"file://" + dir + "/missing.pem":    certs.ErrNotFound,
		"file://relative/path.pem":          nil,
		"file://" + dir + "/x.pem?colour=1": nil,
	}
	for ref, want := range cases {
		_, err := m.Bundle(t.Context(), ref)
		var re *certs.RefError
		if err == nil || !errors.As(err, &re) || re.Ref != ref {
			t.Fatalf("%s: want an error naming the ref, got %v", ref, err)
		}
		if want != nil && !errors.Is(err, want) {
			t.Fatalf("%s: got %v, want %v", ref, err, want)
		}
	}
}

// waitChange waits for a change notification.
func waitChange(t *testing.T, m *file.Manager, within time.Duration, what string) {
	t.Helper()
	select {
	case <-m.Changed():
	case <-time.After(within):
		t.Fatalf("no change notification after %s", what)
	}
}

func noChange(t *testing.T, m *file.Manager, within time.Duration, what string) {
	t.Helper()
	select {
	case <-m.Changed():
		t.Fatalf("spurious change notification after %s", what)
	case <-time.After(within):
	}
}

func TestWatchAtomicReplaceAndNoise(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.CA(t, "ca")
	ref, _ := testutil.Bundle(t, dir, "site.pem", ca, "site.example")
	m := newManager(t, time.Hour)
	if _, err := m.Bundle(t.Context(), ref); err != nil {
		t.Fatal(err)
	}
	m.Watch([]string{ref})

	// An unrelated file in the same directory is noise.
	testutil.WriteFile(t, dir, "unrelated.txt", []byte("hello"))
	noChange(t, m, 300*time.Millisecond, "an unrelated write")

	// Rewriting with identical content is not a change either.
	data, _ := os.ReadFile(filepath.Join(dir, "site.pem"))
	testutil.WriteAtomic(t, filepath.Join(dir, "site.pem"), data)
	noChange(t, m, 300*time.Millisecond, "an identical rewrite")

	c2, k2 := testutil.Leaf(t, ca, pki.ECDSAP256, "site.example")
	testutil.WriteAtomic(t, filepath.Join(dir, "site.pem"), append(pki.CertPEM(c2), testutil.KeyPEM(t, k2)...))
	waitChange(t, m, 3*time.Second, "an atomic replace")
	b, err := m.Bundle(t.Context(), ref)
	if err != nil || !b.Leaf().Equal(c2) {
		t.Fatalf("new certificate not read: %v", err)
	}
}

// TestWatchKubernetesSymlinkSwap reproduces how a kubelet updates a
// mounted Secret: files live in a timestamped directory, ..data points at it,
// and the visible names point through ..data. An update writes a new
// directory and renames a new ..data link over the old one.
func TestWatchKubernetesSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.CA(t, "ca")
	write := func(gen string) *pki.CA {
		sub := filepath.Join(dir, gen)
		if err := os.Mkdir(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		testutil.Bundle(t, sub, "tls.pem", ca, "k8s.example")
		return ca
	}
	write("..2026_01")
	if err := os.Symlink("..2026_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/tls.pem", filepath.Join(dir, "tls.pem")); err != nil {
		t.Fatal(err)
	}
	ref := "file://" + filepath.Join(dir, "tls.pem")
	m := newManager(t, time.Hour)
	first, err := m.Bundle(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	m.Watch([]string{ref})

	write("..2026_02")
	if err := os.Symlink("..2026_02", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	_ = os.RemoveAll(filepath.Join(dir, "..2026_01"))
	waitChange(t, m, 3*time.Second, "a ..data symlink swap")
	second, err := m.Bundle(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if second.Leaf().Equal(first.Leaf()) {
		t.Fatal("the swapped certificate was not read")
	}
}

// TestRescanSafetyNet changes a file in a directory inotify does not
// watch (a symlink target that appeared after Watch), so only the checksum
// rescan can notice.
func TestRescanSafetyNet(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	ca := testutil.CA(t, "ca")
	ref, _ := testutil.Bundle(t, dir, "a.pem", ca, "a.example")
	m := newManager(t, 300*time.Millisecond)
	if _, err := m.Bundle(t.Context(), ref); err != nil {
		t.Fatal(err)
	}
	m.Watch([]string{ref})

	testutil.Bundle(t, other, "b.pem", ca, "a.example")
	if err := os.Remove(filepath.Join(dir, "a.pem")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(other, "b.pem"), filepath.Join(dir, "a.pem")); err != nil {
		t.Fatal(err)
	}
	waitChange(t, m, 3*time.Second, "replacing the file by a symlink")
	if _, err := m.Bundle(t.Context(), ref); err != nil { // as a reload would
		t.Fatal(err)
	}
	// In place, in the unwatched directory.
	c3, k3 := testutil.Leaf(t, ca, pki.ECDSAP256, "a.example")
	if err := os.WriteFile(filepath.Join(other, "b.pem"), append(pki.CertPEM(c3), testutil.KeyPEM(t, k3)...), 0o600); err != nil {
		t.Fatal(err)
	}
	waitChange(t, m, 3*time.Second, "a change only the rescan can see")
}
