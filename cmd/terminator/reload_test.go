package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// TestReloadCommand: "terminator reload" signals the process its pidfile
// names and reports the reload's result: what serves after a good one,
// every problem (with its path) of a refused one, exit 1, and the
// previous configuration still serving.
func TestReloadCommand(t *testing.T) {
	dir := t.TempDir()
	bind := freePort(t)
	backend := tu.EchoBackend(t)
	_, port := tu.HostPort(t, backend.URL)
	cfg := func(extra string) string {
		return fmt.Sprintf("listeners:\n  - {name: web, protocol: HTTP, bind: %q, default_pool: app%s}\npools:\n  - {name: app, members: [{address: 127.0.0.1, protocol_port: %s}]}\n", bind, extra, port)
	}
	path := tu.WriteFile(t, dir, "t.yaml", []byte(cfg("")))
	pidfile := filepath.Join(dir, "terminator.pid")
	startServing(t, path, pidfile)
	out, errOut, code := terminator(t, "reload", "--pidfile", pidfile, "--timeout", "10s")
	if code != 0 || !strings.Contains(out, "reloaded, serving 1 listener(s), configuration generation 2") {
		t.Fatalf("a good reload: exit %d, %q %q", code, out, errOut)
	}
	tu.WriteAtomic(t, path, []byte(cfg(", timeout_client_data: -1, colour: red")))
	out, errOut, code = terminator(t, "reload", "--pidfile", pidfile, "--timeout", "10s")
	if code != 1 || !strings.Contains(errOut, "refused; the previous configuration keeps serving") || !strings.Contains(errOut, "colour") {
		t.Fatalf("a bad reload: exit %d, %q %q", code, out, errOut)
	}
	if c, err := net.Dial("tcp", bind); err != nil {
		t.Fatalf("after a refused reload: %v", err)
	} else {
		c.Close()
	}
	out, errOut, code = terminator(t, "reload", "--pidfile", filepath.Join(dir, "nope.pid"))
	if code != 1 || !strings.Contains(errOut, "nope.pid") {
		t.Fatalf("without a pidfile: exit %d, %q %q", code, out, errOut)
	}
}

// startServing runs "terminator serve" with the config and pidfile until
// the test ends, and returns once the pidfile names it (every signal
// handler is in place then).
func startServing(t *testing.T, config, pidfile string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary, "serve", "--config", config, "--pidfile", pidfile, "--drain-timeout", "2s")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(pidfile); err == nil {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatal("terminator serve wrote no pidfile")
		}
	}
}
