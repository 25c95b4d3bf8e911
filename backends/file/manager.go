package file

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/terminator-proxy/terminator/certs"
)

// Options configure a Manager. The zero value is usable.
type Options struct {
	// Rescan is the interval of the checksum safety-net rescan; default 10s.
	Rescan time.Duration
	// Debounce is how long the directory must be quiet after an event
	// before files are compared; default 100ms.
	Debounce time.Duration
	// Logger receives watch errors; default slog.Default().
	Logger *slog.Logger
}

// Manager serves file:// references and watches them. Create it with New
// and run Run in a goroutine owned by the caller; it is safe for concurrent
// use.
type Manager struct {
	opts    Options
	watcher *fsnotify.Watcher
	changed chan struct{}

	mu sync.Mutex // guards the fields below
	// digests holds the SHA-256 of each file's content as last read (absent
	// files are recorded as the empty digest) and its metadata from just
	// before that read.
	digests map[string]fileState
	// cache maps a ref to the bundle parsed from the digests it was read at.
	cache map[string]cached
	// dirs holds the directories watched for the current snapshot's refs.
	dirs map[string]bool
	// layouts remembers how each ref read resolved, so that Watch need not
	// look at the file system again for it.
	layouts map[string]layout
	// order and cursor walk the files for the paced periodic rescan;
	// orderStale is set when the set of files changes.
	order      []string
	cursor     int
	orderStale bool
	// reads counts files read (tests check what a reload reads).
	reads int
}

type cached struct {
	key    [sha256.Size]byte // digest over the ref's files
	bundle *certs.Bundle
	layout layout   // the layout it was read with
	files  []string // the files it was read from
}

var absentDigest [sha256.Size]byte

// New returns a Manager; it starts watching once Run runs.
func New(opts Options) (*Manager, error) {
	if opts.Rescan <= 0 {
		opts.Rescan = 10 * time.Second
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("file cert manager: starting watcher: %w", err)
	}
	return &Manager{
		opts:    opts,
		watcher: w,
		changed: make(chan struct{}, 1),
		digests: map[string]fileState{},
		cache:   map[string]cached{},
		dirs:    map[string]bool{},
		layouts: map[string]layout{},
	}, nil
}

// Bundle implements certs.Manager. A ref whose files are unchanged since the
// last call returns the same *Bundle without parsing again. A sibling
// passphrase file (PATH.pass, the layout's optional one) is read only when
// the key turns out to be encrypted: for the usual unencrypted key it is
// neither opened nor watched.
//
// The named file is read first; only when something is missing does the
// manager look for Octavia's layout (PATH.crt and siblings), so the usual
// reference costs no stat of its own. A reference whose files all still
// have the metadata they had when its bundle was read costs one stat per
// file and nothing else (see unchanged).
func (m *Manager) Bundle(_ context.Context, ref string) (*certs.Bundle, error) {
	l, err := refLayout(ref)
	if err != nil {
		return nil, &certs.RefError{Ref: ref, Err: err}
	}
	if b, ok := m.unchanged(ref, l); ok {
		return b, nil
	}
	b, err := m.bundleWithPass(ref, l)
	if errors.Is(err, fs.ErrNotExist) {
		if ol, ok := octaviaLayout(l); ok {
			l = ol
			b, err = m.bundleWithPass(ref, l)
		}
	}
	m.mu.Lock()
	m.layouts[ref] = l
	m.mu.Unlock()
	return b, err
}

// unchanged returns the bundle last read for ref if every file it was read
// from still has the metadata recorded just before that read — device,
// inode, size, modification and change times, the periodic rescan's test
// — and Octavia's layout, if it was used, still applies (the named file
// has not appeared). A reload of 100,000 unchanged certificates then
// stats them instead of opening, reading and hashing each one.
func (m *Manager) unchanged(ref string, l layout) (*certs.Bundle, bool) {
	m.mu.Lock()
	c, ok := m.cache[ref]
	metas := make([]fileMeta, len(c.files))
	for i, p := range c.files {
		metas[i] = m.digests[p].meta // zero if no longer tracked: never equal to a file's
	}
	m.mu.Unlock()
	if !ok {
		return nil, false
	}
	for i, p := range c.files {
		if statOf(p) != metas[i] {
			return nil, false
		}
	}
	if c.layout != l && statOf(l.path).exists {
		return nil, false
	}
	m.mu.Lock()
	m.layouts[ref] = c.layout
	m.mu.Unlock()
	return c.bundle, true
}

// bundleWithPass is bundle without the optional passphrase file, and with
// it when the key turns out to be encrypted.
func (m *Manager) bundleWithPass(ref string, l layout) (*certs.Bundle, error) {
	b, err := m.bundle(ref, l, !l.optionalPass)
	if errors.Is(err, certs.ErrNeedsPassphrase) && l.optionalPass {
		b, err = m.bundle(ref, l, true)
	}
	return b, err
}

// bundle reads l's files (the optional passphrase file only if withPass)
// and parses them, or returns the cached bundle if they are unchanged.
func (m *Manager) bundle(ref string, l layout, withPass bool) (*certs.Bundle, error) {
	files, key, err := m.readAll(l, withPass)
	if err != nil {
		return nil, &certs.RefError{Ref: ref, Err: err}
	}
	m.mu.Lock()
	c, ok := m.cache[ref]
	m.mu.Unlock()
	if ok && c.key == key {
		return c.bundle, nil
	}
	var pass []byte
	if p := files.passphrase; p != nil {
		pass = bytes.TrimRight(p, "\r\n")
	}
	var b *certs.Bundle
	if l.key == "" && l.intermediates == "" {
		b, err = certs.Parse(ref, files.cert, pass)
	} else {
		b, err = certs.ParseParts(ref, files.cert, files.key, files.intermediates, pass)
	}
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.cache[ref] = cached{key: key, bundle: b, layout: l, files: files.paths}
	m.mu.Unlock()
	return b, nil
}

// Secret implements certs.Manager: the raw content of the referenced file
// (PATH.crt in Octavia's layout, as its get_secret does).
func (m *Manager) Secret(_ context.Context, ref string) ([]byte, error) {
	l, err := parseRef(ref)
	if err != nil {
		return nil, &certs.RefError{Ref: ref, Err: err}
	}
	data, _, err := m.read(l.cert, false)
	if err != nil {
		return nil, &certs.RefError{Ref: ref, Err: err}
	}
	return data, nil
}

// contents holds what a layout's files hold, by role, and the paths read.
type contents struct {
	cert, key, intermediates, passphrase []byte
	paths                                []string
}

// readAll reads the files of a layout (the optional passphrase file only
// if withPass) and returns the contents and one digest over their paths
// and the digests read recorded for them.
func (m *Manager) readAll(l layout, withPass bool) (contents, [sha256.Size]byte, error) {
	var out contents
	h := sha256.New()
	for _, f := range []struct {
		path string
		dst  *[]byte
	}{{l.cert, &out.cert}, {l.key, &out.key}, {l.intermediates, &out.intermediates}, {l.passphrase, &out.passphrase}} {
		if f.path == "" || f.path == l.passphrase && l.optionalPass && !withPass {
			continue
		}
		data, d, err := m.read(f.path, l.optional(f.path))
		if err != nil {
			return contents{}, [sha256.Size]byte{}, err
		}
		*f.dst = data
		out.paths = append(out.paths, f.path)
		h.Write([]byte(f.path))
		h.Write(d[:])
	}
	var key [sha256.Size]byte
	copy(key[:], h.Sum(nil))
	return out, key, nil
}

// read returns a file's content and its digest, and records the digest.
// An optional file that does not exist reads as nil with the zero digest.
func (m *Manager) read(p string, optional bool) ([]byte, [sha256.Size]byte, error) {
	data, meta, err := readWithMeta(p)
	var d [sha256.Size]byte
	switch {
	case err == nil:
		d = sha256.Sum256(data)
	case optional && errors.Is(err, fs.ErrNotExist):
		data, err = nil, nil
	default:
		return nil, d, fmt.Errorf("reading %s: %w", p, unwrapPath(err))
	}
	m.mu.Lock()
	m.reads++
	if _, known := m.digests[p]; !known {
		m.orderStale = true
	}
	m.digests[p] = fileState{digest: d, meta: meta}
	m.mu.Unlock()
	return data, d, nil
}

// unwrapPath drops *fs.PathError's own copy of the path, which the caller
// already names.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %w", certs.ErrNotFound, pe.Err)
		}
		return pe.Err
	}
	return err
}
