package file

import (
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Changed implements certs.Watcher. It receives one value per burst of
// real content changes in watched files.
func (m *Manager) Changed() <-chan struct{} { return m.changed }

// Watch implements certs.Watcher: it replaces the set of watched refs. Refs
// of other schemes are ignored.
func (m *Manager) Watch(refs []string) {
	dirs := map[string]bool{}
	files := map[string]bool{}
	watched := map[string]bool{}
	for _, ref := range refs {
		l, err := parseRef(ref)
		if err != nil {
			continue
		}
		watched[ref] = true
		for _, p := range l.paths() {
			files[p] = true
			dirs[filepath.Dir(p)] = true
			if real, err := filepath.EvalSymlinks(p); err == nil {
				dirs[filepath.Dir(real)] = true
			}
		}
	}
	m.mu.Lock()
	old := m.dirs
	m.dirs = dirs
	for ref := range m.cache {
		if !watched[ref] {
			delete(m.cache, ref)
		}
	}
	for p := range m.digests {
		if !files[p] {
			delete(m.digests, p)
		}
	}
	m.mu.Unlock()
	for d := range old {
		if !dirs[d] {
			_ = m.watcher.Remove(d) // the directory may be gone already
		}
	}
	m.addDirs(dirs)
}

func (m *Manager) addDirs(dirs map[string]bool) {
	for d := range dirs {
		if err := m.watcher.Add(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.opts.Logger.Warn("file cert manager: cannot watch directory; relying on rescans", "dir", d, "err", err)
		}
	}
}

// Run watches until ctx is done, then releases the watcher. It must be
// called once.
func (m *Manager) Run(ctx context.Context) {
	defer m.watcher.Close()
	rescan := time.NewTicker(m.opts.Rescan)
	defer rescan.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-m.watcher.Events:
			if !ok {
				return
			}
			debounce.Reset(m.opts.Debounce)
		case err, ok := <-m.watcher.Errors:
			if !ok {
				return
			}
			m.opts.Logger.Warn("file cert manager: watch error; a rescan will follow", "err", err)
			debounce.Reset(m.opts.Debounce)
		case <-debounce.C:
			m.compare()
		case <-rescan.C:
			m.mu.Lock()
			dirs := m.dirs
			m.mu.Unlock()
			m.addDirs(dirs) // directories that were recreated
			m.compare()
		}
	}
}

// compare re-reads every file read so far and notifies if any differs from
// the digest recorded at its last read.
func (m *Manager) compare() {
	m.mu.Lock()
	paths := make(map[string][sha256.Size]byte, len(m.digests))
	for p, d := range m.digests {
		paths[p] = d
	}
	m.mu.Unlock()
	for p, d := range paths {
		var now [sha256.Size]byte
		if data, err := os.ReadFile(p); err == nil {
			now = sha256.Sum256(data)
		}
		if now != d {
			m.notify()
			return
		}
	}
}

func (m *Manager) notify() {
	select {
	case m.changed <- struct{}{}:
	default: // a notification is already pending
	}
}
