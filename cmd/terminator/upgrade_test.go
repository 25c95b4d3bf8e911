package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// TestBinaryUpgradeUnderLoad: 20 s of keep-alive (HTTP/1.1 and HTTP/2) and
// new-connection traffic while the binary is upgraded three times with
// SIGUSR2, the second time to a binary that cannot start. No request
// fails; the listening socket is the same kernel socket throughout (same
// inode, never refused); each successor tells systemd its MAINPID and
// becomes the main process, its predecessor exits after draining; a
// session ticket issued before an upgrade resumes after it; and a member
// that health checks marked DOWN stays DOWN in the successor, whose own
// first check is up to a minute away, so not one request reaches it.
func TestBinaryUpgradeUnderLoad(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "bin", "terminator")
	install := func(from string) { // as dpkg does: a new file renamed over the old
		t.Helper()
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(exe), 0o755)
		if err := os.WriteFile(exe+".new", data, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(exe+".new", exe); err != nil {
			t.Fatal(err)
		}
	}
	install(binary)
	broken := tu.WriteFile(t, dir, "broken", []byte("#!/bin/sh\necho 'broken build: cannot start' >&2\nexit 3\n"))
	os.Chmod(broken, 0o755)

	ca := tu.CA(t, "upgrade-ca")
	tu.Bundle(t, dir, "site.pem", ca, "site.example")
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "good") }))
	defer good.Close()
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			w.WriteHeader(500)
		}
		io.WriteString(w, "sick")
	}))
	defer sick.Close()
	_, goodPort := tu.HostPort(t, good.URL)
	_, sickPort := tu.HostPort(t, sick.URL)
	bind, admin := freePort(t), freePort(t)
	dns := tu.UDPEcho(t, "dns")
	_, dnsPort, _ := net.SplitHostPort(dns.LocalAddr().String())
	config := func(delay int) string {
		return fmt.Sprintf(`admin: {bind: %q}
listeners:
  - {name: web, protocol: TERMINATED_HTTPS, bind: %q, default_tls_container_ref: "file://%s/site.pem", default_pool: app}
  - {name: dns, protocol: UDP, bind: %q, default_pool: dns}
pools:
  - {name: dns, protocol: UDP, members: [{address: 127.0.0.1, protocol_port: %s}]}
  - name: app
    members: [{name: good, address: 127.0.0.1, protocol_port: %s}, {name: sick, address: 127.0.0.1, protocol_port: %s}]
    healthmonitor: {type: HTTP, delay: %d, timeout: 1, max_retries: 2, max_retries_down: 1, url_path: /health, expected_codes: "200"}
`, admin, bind, dir, bind, dnsPort, goodPort, sickPort, delay)
	}
	cfgPath := tu.WriteFile(t, dir, "t.yaml", []byte(config(1)))

	sd := listenNotify(t, filepath.Join(dir, "notify"))
	// Successors outlive their parents; as subreaper this test inherits
	// and reaps them.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	var stderr syncBuffer
	pidfile := filepath.Join(dir, "run", "terminator.pid")
	os.Mkdir(filepath.Dir(pidfile), 0o755)
	cmd := exec.Command(exe, "serve", "--config", cfgPath, "--drain-timeout", "5s", "--upgrade-timeout", "20s", "--pidfile", pidfile)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sd.path, "WATCHDOG_USEC=2000000")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	main := cmd.Process.Pid
	defer func() {
		syscall.Kill(main, syscall.SIGKILL)
		reap(t, main, 5*time.Second)
		if t.Failed() {
			t.Logf("terminator's log:\n%s", stderr.String())
		}
	}()
	cmd.Process.Release() // reaped with wait4 like its successors
	sd.next(t, "READY=1", 10*time.Second)
	waitMetric(t, admin, `terminator_member_status{member="sick",pool="app",status="DOWN"} 1`, 10*time.Second)
	// The successors' checks start at most a minute late: without the
	// carried-over state they would take the sick member for UP.
	tu.WriteAtomic(t, cfgPath, []byte(config(60)))

	inode, udpInode := listenInode(t, "tcp", bind), listenInode(t, "udp", bind)
	udpClient, err := net.Dial("udp", bind)
	if err != nil {
		t.Fatal(err)
	}
	defer udpClient.Close()
	if got := tu.UDPAsk(t, udpClient, "before", 5); got != "dns" {
		t.Fatalf("the UDP listener answered %q", got)
	}
	roots := tu.Pool(ca)
	url := "https://" + bind + "/"
	load := tu.StartLoadChecked(roots, url, "site.example", 4, 1, func(body []byte) error {
		if string(body) != "good" {
			return fmt.Errorf("answered by %q", body)
		}
		return nil
	})
	tickets := tls.NewLRUClientSessionCache(8)
	resumes := func() bool {
		t.Helper()
		c := tu.Client(roots, "site.example", false)
		tr := c.Transport.(*http.Transport)
		tr.TLSClientConfig.ClientSessionCache, tr.DisableKeepAlives = tickets, true
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.TLS.DidResume
	}
	resumes() // a ticket from the first binary
	start := time.Now()

	// Each upgrade goes through "terminator upgrade", as the package's
	// postinst does, and is seen by systemd's socket as well.
	upgradeTo := func(from string) (pid int, ok bool) {
		t.Helper()
		install(from)
		stdout, stderr, code := terminator(t, "upgrade", "--pidfile", pidfile, "--timeout", "40s")
		msg := sd.next(t, "", 30*time.Second, "MAINPID=", "binary upgrade failed")
		if !strings.Contains(msg, "MAINPID=") {
			if code != 1 || !strings.Contains(stderr, "did not take over; pid "+strconv.Itoa(main)+" keeps serving") {
				t.Fatalf("terminator upgrade after a failed upgrade: exit %d, %s%s", code, stdout, stderr)
			}
			return 0, false
		}
		pid, err := strconv.Atoi(strings.TrimPrefix(field(msg, "MAINPID="), "MAINPID="))
		if err != nil || pid == main {
			t.Fatalf("MAINPID message %q", msg)
		}
		if code != 0 || !strings.Contains(stdout, fmt.Sprintf("pid %d serves the new binary", pid)) {
			t.Fatalf("terminator upgrade: exit %d, %s%s", code, stdout, stderr)
		}
		sd.next(t, "READY=1", 10*time.Second) // the successor, once main
		drained := time.Now()
		reap(t, main, 10*time.Second) // the predecessor drains and exits
		t.Logf("upgrade: pid %d handed over to %d; the old one exited %v later", main, pid, time.Since(drained).Round(time.Millisecond))
		return pid, true
	}
	for i, from := range []string{binary, broken, binary} {
		time.Sleep(4 * time.Second)
		pid, ok := upgradeTo(from)
		if from == broken {
			if ok {
				t.Fatal("a binary that cannot start took over")
			}
			if err := syscall.Kill(main, 0); err != nil {
				t.Fatalf("after the failed upgrade the serving process is gone: %v", err)
			}
			for deadline := time.Now().Add(5 * time.Second); !strings.Contains(stderr.String(), "exit status 3 before it was ready"); {
				if time.Now().After(deadline) { // the log arrives through a pipe
					t.Fatalf("the failed upgrade is not logged with its cause:\n%s", stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			install(binary)
			continue
		}
		if !ok {
			t.Fatalf("upgrade %d failed:\n%s", i+1, stderr.String())
		}
		main = pid
		if !resumes() {
			t.Fatalf("upgrade %d: a session ticket from before the upgrade did not resume", i+1)
		}
		if got := listenInode(t, "tcp", bind); got != inode {
			t.Fatalf("upgrade %d: the listening socket changed (inode %d, was %d)", i+1, got, inode)
		}
		if got := listenInode(t, "udp", bind); got != udpInode {
			t.Fatalf("upgrade %d: the UDP socket changed (inode %d, was %d)", i+1, got, udpInode)
		}
		if got := tu.UDPAsk(t, udpClient, fmt.Sprintf("after%d", i), 5); got != "dns" {
			t.Fatalf("upgrade %d: the UDP listener answered %q", i+1, got)
		}
	}
	time.Sleep(time.Until(start.Add(20 * time.Second)))
	load.Finish(t)
	waitMetric(t, admin, `terminator_member_status{member="sick",pool="app",status="DOWN"} 1`, time.Second)
	syscall.Kill(main, syscall.SIGTERM)
	reap(t, main, 10*time.Second)
	if _, err := os.Stat(pidfile); err == nil {
		t.Error("the pidfile outlived the process it names")
	}
}

// notifySocket is systemd's end of NOTIFY_SOCKET. Like systemd it reads
// every message as it comes: a sender blocks once max_dgram_qlen
// datagrams wait unread.
type notifySocket struct {
	path string
	msgs chan string
}

func listenNotify(t *testing.T, path string) *notifySocket {
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	s := &notifySocket{path: path, msgs: make(chan string, 4096)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			select {
			case s.msgs <- string(buf[:n]):
			default: // a test that stopped listening
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return s
}

// next returns the next message containing want (or any of anyOf),
// skipping the others.
func (s *notifySocket) next(t *testing.T, want string, within time.Duration, anyOf ...string) string {
	t.Helper()
	if want != "" {
		anyOf = append(anyOf, want)
	}
	timeout := time.After(within)
	for {
		select {
		case msg := <-s.msgs:
			for _, w := range anyOf {
				if strings.Contains(msg, w) {
					return msg
				}
			}
		case <-timeout:
			t.Fatalf("waiting %v for %q from terminator", within, anyOf)
		}
	}
}

func field(msg, prefix string) string {
	for _, l := range strings.Split(msg, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// reap waits for pid, a child or an orphan this process is subreaper of.
func reap(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if got == pid || errors.Is(err, unix.ECHILD) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d did not exit within %v", pid, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// listenInode is the inode of the kernel socket bound to addr: a TCP
// listener or an unconnected UDP socket.
func listenInode(t *testing.T, proto, addr string) uint64 {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	state := "0A" // LISTEN
	if proto == "udp" {
		state = "07" // unconnected
	}
	f, err := os.Open("/proc/net/" + proto)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 9 && fs[3] == state && fs[2] == "00000000:0000" && strings.HasSuffix(fs[1], fmt.Sprintf(":%04X", p)) {
			n, _ := strconv.ParseUint(fs[9], 10, 64)
			return n
		}
	}
	t.Fatalf("nothing listens on %s", addr)
	return 0
}

// waitMetric waits until the admin endpoint's /metrics has line.
func waitMetric(t *testing.T, admin, line string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), line) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %s", line)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// syncBuffer collects a process's output for reading while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
