package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// TestSystemdNotify: under a Type=notify unit, terminator says READY=1
// only once its listeners accept, RELOADING=1 then READY=1 around each
// SIGHUP reload (with a STATUS that says when a reload was refused),
// pings the watchdog, and says STOPPING=1 at SIGTERM. systemd's side is a
// real unix datagram socket, as NOTIFY_SOCKET names it.
func TestSystemdNotify(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	bind := freePort(t)
	backend := freePort(t)
	_, port, _ := net.SplitHostPort(backend)
	cfg := func(extra string) string {
		return fmt.Sprintf("listeners:\n  - {name: web, protocol: HTTP, bind: %q, default_pool: app%s}\npools:\n  - {name: app, members: [{address: 127.0.0.1, protocol_port: %s}]}\n", bind, extra, port)
	}
	path := tu.WriteFile(t, dir, "t.yaml", []byte(cfg("")))
	cmd := exec.Command(binary, "serve", "--config", path, "--drain-timeout", "2s")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=300000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	next := func(want string) string {
		t.Helper()
		buf := make([]byte, 4096)
		deadline := time.Now().Add(10 * time.Second)
		for {
			conn.SetReadDeadline(deadline)
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("waiting for %s: %v", want, err)
			}
			msg := string(buf[:n])
			if strings.Contains(msg, "WATCHDOG=1") && want != "WATCHDOG=1" {
				continue
			}
			if !strings.Contains(msg, want) {
				t.Fatalf("got %q, want %s", msg, want)
			}
			return msg
		}
	}
	msg := next("READY=1")
	if c, err := net.Dial("tcp", bind); err != nil {
		t.Fatalf("READY=1 came before the listener accepts: %v", err)
	} else {
		c.Close()
	}
	if !strings.Contains(msg, "STATUS=serving 1 listener(s)") {
		t.Fatalf("status: %q", msg)
	}
	next("WATCHDOG=1")

	cmd.Process.Signal(syscall.SIGHUP)
	if m := next("RELOADING=1"); !strings.Contains(m, "MONOTONIC_USEC=") {
		t.Fatalf("reloading: %q", m)
	}
	if m := next("READY=1"); !strings.Contains(m, "configuration generation 2") {
		t.Fatalf("after a good reload: %q", m)
	}
	tu.WriteAtomic(t, path, []byte(cfg(", colour: red")))
	cmd.Process.Signal(syscall.SIGHUP)
	next("RELOADING=1")
	if m := next("READY=1"); !strings.Contains(m, "reload refused") {
		t.Fatalf("after a refused reload: %q", m)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	next("STOPPING=1")
}
