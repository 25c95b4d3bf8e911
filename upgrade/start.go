package upgrade

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Spec describes a successor.
type Spec struct {
	// Path is the binary to start: the path the running binary was
	// started from, which now holds the new one.
	Path string
	// Args are its arguments, without argv[0].
	Args []string
	// Env is its environment (default os.Environ()). WATCHDOG_PID is
	// dropped, since the watchdog passes to the successor, and envVar set.
	Env []string
	// Files are the sockets to hand over, by a name the successor asks
	// for. Start does not close them.
	Files map[string]*os.File
	// State is handed over as is.
	State []byte
	// Timeout bounds how long the successor may take to be ready.
	Timeout time.Duration
	// Stdout and Stderr default to the process's own. They are files, not
	// writers: a copying goroutine would outlive Release.
	Stdout, Stderr *os.File
}

// Successor is a started, ready successor.
type Successor struct {
	cmd  *exec.Cmd
	conn *net.UnixConn
	pid  int // Release forgets cmd.Process.Pid
}

// Start starts the successor and waits until it is ready, it exits, ctx
// ends or s.Timeout passes. On error the successor is gone (killed and
// reaped) and the error says what it did.
func Start(ctx context.Context, s Spec) (*Successor, error) {
	if len(s.State) > maxState {
		return nil, fmt.Errorf("upgrade: state of %d bytes exceeds %d", len(s.State), maxState)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("upgrade: socket pair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "upgrade-parent"), os.NewFile(uintptr(fds[1]), "upgrade-child")
	fc, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		theirs.Close()
		return nil, fmt.Errorf("upgrade: socket pair: %w", err)
	}
	conn := fc.(*net.UnixConn)

	d := descriptors{Control: 3, Files: map[string]int{}}
	extra := []*os.File{theirs}
	for name, f := range s.Files {
		d.Files[name] = 3 + len(extra)
		extra = append(extra, f)
	}
	desc, _ := json.Marshal(d)
	env := s.Env
	if env == nil {
		env = os.Environ()
	}
	var childEnv []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "WATCHDOG_PID=") && !strings.HasPrefix(kv, envVar+"=") {
			childEnv = append(childEnv, kv)
		}
	}
	cmd := exec.Command(s.Path, s.Args...)
	cmd.Env = append(childEnv, envVar+"="+string(desc))
	cmd.ExtraFiles = extra
	cmd.Stdout, cmd.Stderr = orDefault(s.Stdout, os.Stdout), orDefault(s.Stderr, os.Stderr)
	err = cmd.Start()
	theirs.Close() // the successor's end is its own now: its exit reads as EOF here
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("upgrade: starting %s: %w", s.Path, err)
	}
	succ := &Successor{cmd: cmd, conn: conn, pid: cmd.Process.Pid}
	if err := succ.handshake(ctx, s); err != nil {
		conn.Close()
		cmd.Process.Kill()
		werr := cmd.Wait()
		if werr != nil && !errors.Is(err, errTimeout) {
			return nil, fmt.Errorf("upgrade: %s (pid %d) %v before it was ready", s.Path, cmd.Process.Pid, werr)
		}
		return nil, fmt.Errorf("upgrade: %s (pid %d): %w", s.Path, cmd.Process.Pid, err)
	}
	return succ, nil
}

var errTimeout = errors.New("not ready in time; killed")

// handshake sends the state and waits for the successor's readiness.
func (s *Successor) handshake(ctx context.Context, spec Spec) error {
	deadline := time.Now().Add(spec.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	stop := context.AfterFunc(ctx, func() { s.conn.SetDeadline(time.Now()) })
	defer stop()
	s.conn.SetDeadline(deadline)
	defer s.conn.SetDeadline(time.Time{})
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(spec.State)))
	if _, err := s.conn.Write(append(n[:], spec.State...)); err != nil {
		return classify(ctx, err, "sending the state")
	}
	line, err := bufio.NewReader(io.LimitReader(s.conn, 64)).ReadString('\n')
	if err != nil {
		return classify(ctx, err, "waiting for readiness")
	}
	if line != msgReady {
		return fmt.Errorf("said %q instead of ready", line)
	}
	return nil
}

func classify(ctx context.Context, err error, doing string) error {
	var ne net.Error
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", doing, ctx.Err())
	case errors.As(err, &ne) && ne.Timeout():
		return errTimeout
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// Pid is the successor's process id.
func (s *Successor) Pid() int { return s.pid }

// Release tells the successor that it is the main process now (systemd has
// been told its PID) and lets it go; the caller then stops accepting and
// drains. The successor is not waited for: it outlives its predecessor.
func (s *Successor) Release() error {
	_, err := s.conn.Write([]byte(msgMain))
	s.conn.Close()
	_ = s.cmd.Process.Release()
	return err
}

func orDefault(f, d *os.File) *os.File {
	if f == nil {
		return d
	}
	return f
}
