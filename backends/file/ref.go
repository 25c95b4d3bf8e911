package file

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// layout is the set of files one reference reads.
type layout struct {
	path                                 string // the reference's own path
	cert, key, intermediates, passphrase string
	// optionalInt and optionalPass mark the intermediates and passphrase
	// files as ones that may be absent (sibling .int, .pass).
	optionalInt, optionalPass bool
}

// optional reports whether file p of the layout may be absent.
func (l layout) optional(p string) bool {
	return p == l.intermediates && l.optionalInt || p == l.passphrase && l.optionalPass
}

// appendPaths appends the layout's files to dst.
func (l layout) appendPaths(dst []string) []string {
	for _, p := range [...]string{l.cert, l.key, l.intermediates, l.passphrase} {
		if p != "" {
			dst = append(dst, p)
		}
	}
	return dst
}

// parseRef resolves a file:// reference to the files it reads: the named
// file, or Octavia's local cert manager layout when that file does not
// exist and PATH.crt does.
func parseRef(ref string) (layout, error) {
	l, err := refLayout(ref)
	if err != nil {
		return layout{}, err
	}
	if ol, ok := octaviaLayout(l); ok {
		return ol, nil
	}
	return l, nil
}

// refLayout reads a file:// reference without looking at the file system:
// the named file with its query's key, intermediates and passphrase file,
// or else an optional sibling PATH.pass (a path's extension replaced).
func refLayout(ref string) (layout, error) {
	u, err := url.Parse(ref)
	if err != nil {
		return layout{}, fmt.Errorf("invalid file reference: %w", err)
	}
	if u.Scheme != "file" {
		return layout{}, fmt.Errorf("not a file:// reference")
	}
	if u.Host != "" && u.Host != "localhost" {
		return layout{}, fmt.Errorf("file reference names host %q; write file:///absolute/path", u.Host)
	}
	p := u.Path
	if p == "" || !filepath.IsAbs(p) {
		return layout{}, fmt.Errorf("file reference needs an absolute path (file:///path)")
	}
	p = filepath.Clean(p)
	var q url.Values
	if u.RawQuery != "" {
		q = u.Query()
	}
	for k := range q {
		switch k {
		case "key", "intermediates", "passphrase_file":
		default:
			return layout{}, fmt.Errorf("unknown query parameter %q (want key, intermediates or passphrase_file)", k)
		}
	}
	l := layout{
		path:          p,
		cert:          p,
		key:           q.Get("key"),
		intermediates: q.Get("intermediates"),
		passphrase:    q.Get("passphrase_file"),
	}
	if l.passphrase == "" {
		l.passphrase = strings.TrimSuffix(p, filepath.Ext(p)) + ".pass"
		l.optionalPass = true
	}
	return l, nil
}

// octaviaLayout returns the layout of Octavia's local cert manager
// (PATH.crt, PATH.key, optional PATH.int and PATH.pass) for a plain layout
// l without a separate key whose file does not exist while PATH.crt does.
func octaviaLayout(l layout) (layout, bool) {
	p := l.path
	if l.key != "" || l.cert != p {
		return layout{}, false
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) || !exists(p+".crt") {
		return layout{}, false
	}
	ol := layout{path: p, cert: p + ".crt", key: p + ".key", intermediates: p + ".int", optionalInt: true, passphrase: l.passphrase}
	if l.optionalPass {
		ol.passphrase, ol.optionalPass = p+".pass", true
	}
	return ol, true
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
