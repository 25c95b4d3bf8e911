package proxy

import (
	"errors"
	"os"
)

// File returns a duplicate of the listening socket's descriptor, to hand
// to a new process; the socket stays open in both until both close it.
func (l *Listener) File() (*os.File, error) {
	f, ok := l.ln.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, errors.New("proxy: listener " + l.ln.Addr().String() + " has no descriptor to hand over")
	}
	return f.File()
}
