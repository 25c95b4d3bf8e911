package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// TestAccessLogRotation: serve writes its access log to a file in a
// haproxy log-format (the variables of Octavia's default, and %ID) with
// request ids; logrotate's move-and-signal
// (rename, SIGUSR1) five times under load from 4 clients loses no line and
// splits none, and each line's request id is the one the member got.
func TestAccessLogRotation(t *testing.T) {
	dir := t.TempDir()
	bind := freePort(t)
	backend := tu.EchoBackend(t)
	_, port := tu.HostPort(t, backend.URL)
	logPath := filepath.Join(dir, "access.log")
	cfg := fmt.Sprintf(`log: {request_id: true, access: {output: file, path: %q, format: "%%f %%ci %%cp %%t %%{+Q}r %%ST %%B %%U %%b %%s %%Tt %%tsc %%ID"}}
listeners: [{name: web, protocol: HTTP, bind: %q, default_pool: app}]
pools: [{name: app, members: [{address: 127.0.0.1, protocol_port: %s}]}]
`, logPath, bind, port)
	path := tu.WriteFile(t, dir, "t.yaml", []byte(cfg))
	cmd := startServing(t, path, filepath.Join(dir, "t.pid"))

	var sent atomic.Int64
	var mu sync.Mutex
	ids := map[string]bool{} // the request ids the member saw
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get("http://" + bind + "/x?y=z")
				if err != nil {
					t.Error(err)
					return
				}
				var echo tu.Echo
				json.NewDecoder(resp.Body).Decode(&echo)
				resp.Body.Close()
				sent.Add(1)
				mu.Lock()
				ids[echo.Header.Get("X-Request-Id")] = true
				mu.Unlock()
			}
		}()
	}
	for i := range 5 {
		time.Sleep(200 * time.Millisecond)
		if err := os.Rename(logPath, fmt.Sprintf("%s.%d", logPath, i)); err != nil {
			t.Fatal(err)
		}
		cmd.Process.Signal(syscall.SIGUSR1)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	cmd.Process.Signal(syscall.SIGTERM) // flushes nothing: every line was written whole already
	cmd.Wait()

	files, _ := filepath.Glob(logPath + "*")
	lines := 0
	logged := map[string]bool{}
	for _, f := range files {
		fh, _ := os.Open(f)
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// web <ip> <port> [date] "GET /x?y=z HTTP/1.1" 200 <B> 0 app <member> <Tt> -- <id>
			if len(fields) != 15 || fields[0] != "web" || fields[4] != `"GET` || fields[7] != "200" || fields[10] != "app" {
				t.Fatalf("line in %s: %q", filepath.Base(f), sc.Text())
			}
			logged[fields[14]] = true
			lines++
		}
		fh.Close()
	}
	t.Logf("%d requests, %d lines in %d files", sent.Load(), lines, len(files))
	if int64(lines) != sent.Load() || len(files) != 6 {
		t.Fatalf("%d requests but %d lines in %d files", sent.Load(), lines, len(files))
	}
	if len(ids) != lines || ids[""] {
		t.Fatalf("the member saw %d distinct request ids for %d requests", len(ids), lines)
	}
	for id := range ids {
		if !logged[id] {
			t.Fatalf("request id %s reached the member but is in no log line", id)
		}
	}
}
