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
	cert, key, intermediates, passphrase string
	// optionalInt and optionalPass mark the intermediates and passphrase
	// files as ones that may be absent (sibling .int, .pass).
	optionalInt, optionalPass bool
}

// optional reports whether file p of the layout may be absent.
func (l layout) optional(p string) bool {
	return p == l.intermediates && l.optionalInt || p == l.passphrase && l.optionalPass
}

func (l layout) paths() []string {
	var out []string
	for _, p := range []string{l.cert, l.key, l.intermediates, l.passphrase} {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseRef resolves a file:// reference to the files it reads.
func parseRef(ref string) (layout, error) {
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
	q := u.Query()
	for k := range q {
		switch k {
		case "key", "intermediates", "passphrase_file":
		default:
			return layout{}, fmt.Errorf("unknown query parameter %q (want key, intermediates or passphrase_file)", k)
		}
	}
	l := layout{
		cert:          p,
		key:           q.Get("key"),
		intermediates: q.Get("intermediates"),
		passphrase:    q.Get("passphrase_file"),
	}
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) && l.key == "" && exists(p+".crt") {
		// Octavia's local cert manager: <ref>.crt, .key, .int, .pass.
		l.cert, l.key, l.intermediates = p+".crt", p+".key", p+".int"
		l.optionalInt = true
		if l.passphrase == "" {
			l.passphrase = p + ".pass"
			l.optionalPass = true
		}
		return l, nil
	}
	if l.passphrase == "" {
		l.passphrase = strings.TrimSuffix(p, filepath.Ext(p)) + ".pass"
		l.optionalPass = true
	}
	return l, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
