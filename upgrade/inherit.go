package upgrade

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// Inheritance is what a successor received from its predecessor. The nil
// Inheritance, of a process started any other way, holds nothing.
type Inheritance struct {
	files map[string]*os.File
	conn  *net.UnixConn
	// State is the predecessor's Spec.State.
	State []byte
}

// Inherited returns the inheritance of a process started by Start, or nil
// for one started otherwise. It reads the state from the predecessor and
// clears envVar, so that the process's own successor starts clean.
func Inherited() (*Inheritance, error) {
	v, ok := os.LookupEnv(envVar)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(envVar)
	var d descriptors
	if err := json.Unmarshal([]byte(v), &d); err != nil {
		return nil, fmt.Errorf("upgrade: %s: %w", envVar, err)
	}
	in := &Inheritance{files: map[string]*os.File{}}
	for name, fd := range d.Files {
		if fd < 3 || fd == d.Control {
			return nil, fmt.Errorf("upgrade: %s: descriptor %d for %q", envVar, fd, name)
		}
		in.files[name] = os.NewFile(uintptr(fd), name)
	}
	fc, err := net.FileConn(os.NewFile(uintptr(d.Control), "upgrade-control"))
	if err != nil {
		return nil, fmt.Errorf("upgrade: control socket: %w", err)
	}
	conn, ok := fc.(*net.UnixConn)
	if !ok {
		return nil, errors.New("upgrade: control descriptor is not a unix socket")
	}
	in.conn = conn
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	var n [4]byte
	if _, err := io.ReadFull(conn, n[:]); err != nil {
		return nil, fmt.Errorf("upgrade: reading the state: %w", err)
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxState {
		return nil, fmt.Errorf("upgrade: state of %d bytes exceeds %d", size, maxState)
	}
	in.State = make([]byte, size)
	if _, err := io.ReadFull(conn, in.State); err != nil {
		return nil, fmt.Errorf("upgrade: reading the state: %w", err)
	}
	conn.SetReadDeadline(time.Time{})
	return in, nil
}

// Listener takes the inherited listening socket of that name, if any; each
// is taken once.
func (in *Inheritance) Listener(name string) (net.Listener, bool, error) {
	return take(in, name, net.FileListener)
}

// PacketConn takes the inherited datagram socket of that name, if any;
// each is taken once.
func (in *Inheritance) PacketConn(name string) (net.PacketConn, bool, error) {
	return take(in, name, net.FilePacketConn)
}

// take turns the inherited descriptor of that name into a socket with
// open, once.
func take[T any](in *Inheritance, name string, open func(*os.File) (T, error)) (T, bool, error) {
	var zero T
	if in == nil {
		return zero, false, nil
	}
	f, ok := in.files[name]
	if !ok {
		return zero, false, nil
	}
	delete(in.files, name)
	sock, err := open(f)
	f.Close()
	if err != nil {
		return zero, false, fmt.Errorf("upgrade: inherited socket %s: %w", name, err)
	}
	return sock, true, nil
}

// CloseUnused closes the inherited sockets nobody took (listeners the new
// configuration no longer has), returning their names.
func (in *Inheritance) CloseUnused() []string {
	if in == nil {
		return nil
	}
	var names []string
	for name, f := range in.files {
		f.Close()
		names = append(names, name)
	}
	in.files = map[string]*os.File{}
	return names
}

// Ready tells the predecessor that this process serves, then waits at most
// wait for it to hand over the main role (it has told systemd the new PID).
// It returns once that happened or the predecessor is gone.
func (in *Inheritance) Ready(wait time.Duration) error {
	if in == nil {
		return nil
	}
	defer in.conn.Close()
	if _, err := in.conn.Write([]byte(msgReady)); err != nil {
		return fmt.Errorf("upgrade: telling the predecessor: %w", err)
	}
	in.conn.SetReadDeadline(time.Now().Add(wait))
	line, err := bufio.NewReader(io.LimitReader(in.conn, 64)).ReadString('\n')
	switch {
	case errors.Is(err, io.EOF):
		return nil // the predecessor is gone
	case err != nil:
		return fmt.Errorf("upgrade: waiting for the predecessor: %w", err)
	case line != msgMain:
		return fmt.Errorf("upgrade: predecessor said %q", line)
	}
	return nil
}
