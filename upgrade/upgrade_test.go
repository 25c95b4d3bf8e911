package upgrade

import (
	"context"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// The test binary plays the successor when childMode is set: "serve"
// answers on the inherited socket with the state it received, "hang" never
// gets ready, "exit" fails at once.
const childMode = "UPGRADE_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childMode) {
	case "":
		os.Exit(m.Run())
	case "exit":
		os.Exit(3)
	case "hang":
		if _, err := Inherited(); err != nil {
			os.Exit(4)
		}
		time.Sleep(time.Minute)
	case "serve":
		in, err := Inherited()
		if err != nil || in == nil {
			os.Exit(5)
		}
		ln, ok, err := in.Listener("data 1")
		if !ok || err != nil {
			os.Exit(6)
		}
		if unused := in.CloseUnused(); len(unused) != 1 || unused[0] != "data gone" {
			os.Exit(7)
		}
		if os.Getenv(envVar) != "" || os.Getenv("WATCHDOG_PID") != "" {
			os.Exit(8)
		}
		if err := in.Ready(10 * time.Second); err != nil {
			os.Exit(9)
		}
		c, err := ln.Accept()
		if err != nil {
			os.Exit(10)
		}
		c.Write(in.State)
		c.Close()
		os.Exit(0)
	}
}

func spec(t *testing.T, mode string, files map[string]*os.File, state []byte) Spec {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Spec{Path: exe, Env: append(os.Environ(), childMode+"="+mode, "WATCHDOG_PID=1"), Files: files, State: state, Timeout: 5 * time.Second}
}

func listenerFile(t *testing.T) (*net.TCPListener, *os.File) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); f.Close() })
	return ln, f
}

// TestHandOver: the successor serves on the socket handed to it and has the
// state; the socket is the same one the predecessor bound.
func TestHandOver(t *testing.T) {
	ln, f := listenerFile(t)
	_, gone := listenerFile(t)
	state := []byte(strings.Repeat("state ", 50000)) // larger than a socket buffer
	succ, err := Start(context.Background(), spec(t, "serve", map[string]*os.File{"data 1": f, "data gone": gone}, state))
	if err != nil {
		t.Fatal(err)
	}
	if succ.Pid() <= 0 || succ.Pid() == os.Getpid() {
		t.Fatalf("pid %d", succ.Pid())
	}
	proc, _ := os.FindProcess(succ.Pid())
	if err := succ.Release(); err != nil {
		t.Fatal(err)
	}
	ln.Close() // the predecessor stops accepting; the successor still does
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != string(state) {
		t.Fatalf("successor answered %d bytes (%v), want the %d-byte state", len(got), err, len(state))
	}
	if st, err := proc.Wait(); err != nil || !st.Success() {
		t.Fatalf("successor: %v %v", st, err)
	}
}

// TestFailedSuccessors: one that exits and one that never gets ready are
// reported with what they did, and are gone.
func TestFailedSuccessors(t *testing.T) {
	_, f := listenerFile(t)
	_, err := Start(context.Background(), spec(t, "exit", map[string]*os.File{"data 1": f}, nil))
	if err == nil || !strings.Contains(err.Error(), "exit status 3 before it was ready") {
		t.Fatalf("exiting successor: %v", err)
	}
	s := spec(t, "hang", map[string]*os.File{"data 1": f}, nil)
	s.Timeout = 500 * time.Millisecond
	start := time.Now()
	_, err = Start(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "not ready in time; killed") {
		t.Fatalf("hanging successor: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Start took %v with a 500ms timeout", d)
	}
	s.State = make([]byte, maxState+1)
	if _, err := Start(context.Background(), s); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversized state: %v", err)
	}
}

// TestNotASuccessor: a process started any other way inherits nothing.
func TestNotASuccessor(t *testing.T) {
	in, err := Inherited()
	if in != nil || err != nil {
		t.Fatalf("%v %v", in, err)
	}
	if _, ok, err := in.Listener("data 1"); ok || err != nil {
		t.Fatalf("nil inheritance gave a listener: %v", err)
	}
	if err := in.Ready(time.Second); err != nil {
		t.Fatal(err)
	}
}
