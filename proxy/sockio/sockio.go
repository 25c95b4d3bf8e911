// Package sockio holds what terminator's connection loops share below
// HTTP: a Probe that looks at a socket without reading from it (an idle
// connection waiting for its client with no buffer, a pooled member
// connection checked before reuse), a FillTracker that tells whether
// the layer under a buffered reader may hold more bytes, and the
// configuration of client-facing listening sockets (ListenConfig).
package sockio

import (
	"errors"
	"io"
	"syscall"
)

// Probe looks at one socket without reading from it: Wait blocks until it
// is readable holding no buffer, Alive reports whether a pooled member
// connection is still open and silent. It is made once per connection,
// so a probe allocates nothing (a SyscallConn and a closure per call were
// four allocations per request). A Probe is used by one goroutine at a
// time.
type Probe struct {
	rc      syscall.RawConn
	first   bool
	ready   bool // Alive: the peek found no data and no EOF
	scratch [1]byte
	waitFn  func(fd uintptr) bool
	aliveFn func(fd uintptr) bool
}

// NewProbe returns a probe of c's socket, or nil when c has none.
func NewProbe(c syscall.Conn) *Probe {
	if c == nil {
		return nil
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	p := &Probe{rc: rc}
	p.waitFn, p.aliveFn = p.waitCheck, p.aliveCheck
	return p
}

// Wait blocks until the socket has bytes (or EOF, or an error) to read,
// or its read deadline passes. It costs no syscall beyond the one a
// blocking read would make: a non-blocking MSG_PEEK first, and after the
// poller's wake-up none.
func (p *Probe) Wait() error {
	p.first = true
	return p.rc.Read(p.waitFn)
}

func (p *Probe) waitCheck(fd uintptr) bool {
	if !p.first {
		return true
	}
	p.first = false
	_, _, e := syscall.Recvfrom(int(fd), p.scratch[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return !errors.Is(e, syscall.EAGAIN)
}

// Alive reports whether the socket is open with nothing to read: a pooled
// connection the member closed, or on which it sent bytes nobody asked
// for, must not carry another request.
func (p *Probe) Alive() bool {
	p.ready = false
	return p.rc.Read(p.aliveFn) == nil && p.ready
}

func (p *Probe) aliveCheck(fd uintptr) bool {
	_, _, e := syscall.Recvfrom(int(fd), p.scratch[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	p.ready = errors.Is(e, syscall.EAGAIN)
	return true
}

// FillTracker sits between a buffered reader and the layer below it and
// remembers whether the last Read filled the caller's buffer (then the
// layer below may hold more, and the connection is not idle).
type FillTracker struct {
	R    io.Reader
	full bool
}

func (t *FillTracker) Read(p []byte) (int, error) {
	n, err := t.R.Read(p)
	t.full = n == len(p)
	return n, err
}

// Full reports whether the last Read filled its buffer.
func (t *FillTracker) Full() bool { return t.full }
