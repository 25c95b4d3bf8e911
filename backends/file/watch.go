package file

import (
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// Changed implements certs.Watcher. It receives one value per burst of
// real content changes in watched files.
func (m *Manager) Changed() <-chan struct{} { return m.changed }

// Watch implements certs.Watcher: it replaces the set of watched refs. Refs
// of other schemes are ignored.
func (m *Manager) Watch(refs []string) {
	files := make(map[string]bool, len(refs))
	watched := make(map[string]bool, len(refs))
	layouts := make([]layout, len(refs))
	known := make([]bool, len(refs))
	m.mu.Lock()
	for i, ref := range refs {
		layouts[i], known[i] = m.layouts[ref]
	}
	m.mu.Unlock()
	var buf [4]string
	for i, ref := range refs {
		l := layouts[i]
		if !known[i] {
			var err error
			if l, err = parseRef(ref); err != nil {
				continue
			}
		}
		watched[ref] = true
		for _, p := range l.appendPaths(buf[:0]) {
			files[p] = true
		}
	}
	dirs := watchDirs(files)
	m.mu.Lock()
	old := m.dirs
	m.dirs = dirs
	for ref := range m.cache {
		if !watched[ref] {
			delete(m.cache, ref)
		}
	}
	for ref := range m.layouts {
		if !watched[ref] {
			delete(m.layouts, ref)
		}
	}
	for p := range m.digests {
		if !files[p] {
			delete(m.digests, p)
			m.orderStale = true
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

// watchDirs returns the directories to watch for files: each file's
// directory, that directory with its symlinks resolved, and for a file that
// is itself a symlink (Kubernetes' ..data layout) its target's directory.
// Symlinks are found with one directory listing per directory rather than
// a path walk per file: resolving every path of 100,000 certificates one by
// one cost 3.4 s of CPU at each reload.
func watchDirs(files map[string]bool) map[string]bool {
	byDir := map[string][]string{}
	for p := range files {
		d := filepath.Dir(p)
		byDir[d] = append(byDir[d], p)
	}
	dirs := map[string]bool{}
	for d, paths := range byDir {
		dirs[d] = true
		if real, err := filepath.EvalSymlinks(d); err == nil {
			dirs[real] = true
		}
		for _, p := range symlinks(d, paths) {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				dirs[filepath.Dir(real)] = true
			}
		}
	}
	return dirs
}

// symlinks returns those of paths (all in dir) that are symbolic links:
// from one listing of dir when there are many, else one lstat each.
func symlinks(dir string, paths []string) []string {
	var out []string
	if len(paths) > 32 {
		if entries, err := os.ReadDir(dir); err == nil {
			links := map[string]bool{}
			for _, e := range entries {
				if e.Type()&fs.ModeSymlink != 0 {
					links[e.Name()] = true
				}
			}
			for _, p := range paths {
				if links[filepath.Base(p)] {
					out = append(out, p)
				}
			}
			return out
		}
	}
	for _, p := range paths {
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			out = append(out, p)
		}
	}
	return out
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
			m.compare(nil)
		case <-rescan.C:
			m.mu.Lock()
			dirs := m.dirs
			m.mu.Unlock()
			m.addDirs(dirs) // directories that were recreated
			m.compare(m.nextBatch())
		}
	}
}

// compare checks every file read so far and notifies if one's content
// differs from the digest recorded at its last read. A file whose metadata
// (device, inode, size, modification and change times, as stat(2) gives
// them through symlinks) is unchanged is not read again: a rescan of
// 100,000 certificates costs 100,000 stat calls, not 100,000 reads and
// hashes (which took a third of a core with no traffic at all).
//
// batch, if not nil, limits the check to those paths: the periodic rescan
// checks rescanBatch files per interval (nextBatch), so that its cost stays
// flat however many certificates there are; a watch event checks all.
func (m *Manager) compare(batch []string) {
	m.mu.Lock()
	paths := make(map[string]fileState, len(m.digests))
	if batch == nil {
		for p, st := range m.digests {
			paths[p] = st
		}
	} else {
		for _, p := range batch {
			if st, ok := m.digests[p]; ok {
				paths[p] = st
			}
		}
	}
	m.mu.Unlock()
	for p, st := range paths {
		meta := statOf(p)
		if meta.exists && meta == st.meta {
			continue
		}
		var now [sha256.Size]byte
		if data, _, err := readWithMeta(p); err == nil {
			now = sha256.Sum256(data)
		}
		if now != st.digest {
			m.notify()
			return
		}
		m.mu.Lock()
		if cur, ok := m.digests[p]; ok && cur == st {
			m.digests[p] = fileState{digest: st.digest, meta: meta} // touched, same content
		}
		m.mu.Unlock()
	}
}

// rescanBatch is how many files one periodic rescan checks: all of them up
// to 2,000; beyond that a full pass takes several intervals (100,000
// files: 50 intervals, about 8 minutes at the default 10 s).
const rescanBatch = 2000

// nextBatch returns the next rescanBatch paths in a fixed order, wrapping
// around, so that every file is checked once per pass.
func (m *Manager) nextBatch() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.orderStale {
		m.order = slices.Sorted(maps.Keys(m.digests))
		m.orderStale = false
	}
	if len(m.order) <= rescanBatch {
		return m.order
	}
	if m.cursor >= len(m.order) {
		m.cursor = 0
	}
	end := min(m.cursor+rescanBatch, len(m.order))
	batch := m.order[m.cursor:end]
	m.cursor = end
	return batch
}

// fileState is what a rescan compares a file with.
type fileState struct {
	digest [sha256.Size]byte
	meta   fileMeta
}

// fileMeta is a file's identity and change stamps; the zero value is a
// file that could not be stat'ed.
type fileMeta struct {
	exists       bool
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // ns
}

func statOf(p string) fileMeta {
	fi, err := os.Stat(p)
	if err != nil {
		return fileMeta{}
	}
	return metaOf(fi)
}

// readWithMeta reads p and returns the metadata of the file it opened,
// taken before the read (fstat on the open file: no second path lookup),
// so a change during or after the read shows at the next rescan.
//
// It makes the system calls itself (open, fstat, read, close): os.Open
// tries to add every file to the network poller, fails for a regular file
// and restores its blocking mode, and a read loop reads once more to see
// the end — together six more calls per file, which a start with 100,000
// certificates felt.
func readWithMeta(p string) ([]byte, fileMeta, error) {
	fd, err := retryEINTR(func() (int, error) { return syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC, 0) })
	if err != nil {
		return nil, fileMeta{}, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, fileMeta{}, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		return nil, fileMeta{}, &fs.PathError{Op: "read", Path: p, Err: syscall.EISDIR}
	}
	meta := statMeta(&st)
	size := 512
	if st.Size > 0 && st.Size < 1<<30 {
		size = int(st.Size) + 1
	}
	// A regular file's read returns less than asked only at its end, so a
	// read that leaves room in the buffer needs no second read to see the
	// end; other files (/proc reports size 0) read until a read returns 0.
	regular := st.Mode&syscall.S_IFMT == syscall.S_IFREG && st.Size > 0
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, cap(buf))
		}
		n, err := retryEINTR(func() (int, error) { return syscall.Read(fd, buf[len(buf):cap(buf)]) })
		if err != nil {
			return nil, fileMeta{}, &fs.PathError{Op: "read", Path: p, Err: err}
		}
		buf = buf[:len(buf)+n]
		if n == 0 || regular && len(buf) < cap(buf) {
			return buf, meta, nil
		}
	}
}

func retryEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != syscall.EINTR {
			return n, err
		}
	}
}

func metaOf(fi fs.FileInfo) fileMeta {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileMeta{} // never equal: always read
	}
	return statMeta(st)
}

func statMeta(st *syscall.Stat_t) fileMeta {
	return fileMeta{exists: true, dev: st.Dev, ino: st.Ino, size: st.Size,
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}
}

func (m *Manager) notify() {
	select {
	case m.changed <- struct{}{}:
	default: // a notification is already pending
	}
}
