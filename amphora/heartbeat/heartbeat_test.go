package heartbeat_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/terminator-proxy/terminator/amphora/heartbeat"
)

// receiver is Octavia's health manager receiver (UDPStatusGetter) in a
// python3 process, decoding what it accepts.
type receiver struct {
	addr  string
	lines chan string
	cmd   *exec.Cmd
}

func startReceiver(t *testing.T, key string, count int) *receiver {
	t.Helper()
	cmd := exec.Command("../../scripts/octavia-peer", "heartbeat-recv", key, fmt.Sprint(count))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting Octavia's receiver (make deps installs python3-octavia): %v", err)
	}
	r := &receiver{lines: make(chan string, count+1), cmd: cmd}
	sc := bufio.NewScanner(out)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "PORT ") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("Octavia's receiver did not start: %q", sc.Text())
	}
	r.addr = "127.0.0.1:" + strings.TrimPrefix(sc.Text(), "PORT ")
	go func() {
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		close(r.lines)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return r
}

func (r *receiver) next(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-r.lines:
		if !ok {
			t.Fatal("Octavia's receiver exited")
		}
		return l
	case <-time.After(20 * time.Second):
		t.Fatal("Octavia's receiver got nothing")
	}
	return ""
}

// source is a data plane's report, changed by the test between heartbeats.
type source struct {
	mu sync.Mutex
	r  heartbeat.Report
}

func (s *source) Health() heartbeat.Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r
}

func (s *source) set(totals heartbeat.Totals, open int64, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.r = heartbeat.Report{
		Listeners: map[string]heartbeat.ListenerReport{
			"l1": {Open: open, Full: full, Totals: totals},
			"l2": {}, // enabled, no traffic: still reported
		},
		Pools: map[string]heartbeat.PoolStatus{"p1:l1": {Status: "UP", Members: map[string]string{"m1": "UP", "m2": "no check", "m3": "DRAIN"}}},
	}
}

// TestOctaviaDecodesHeartbeats: Octavia's own receiver accepts terminator's
// heartbeats and reads version 3 messages from them: the amphora id, seq
// from 0, every listener, statistics as deltas (persisted across a
// restart of the sender, reset when the data plane's totals restart),
// pools with their members; a wrong key is dropped.
func TestOctaviaDecodesHeartbeats(t *testing.T) {
	dir := t.TempDir()
	r := startReceiver(t, "sekrit", 6)
	src := &source{}
	opts := heartbeat.Options{AmphoraID: "amp-1", CountersFile: filepath.Join(dir, "stats_counters.json")}
	s := heartbeat.NewSender(opts, src, heartbeat.Settings{Destinations: []string{r.addr}, Key: "sekrit"})
	type want struct {
		totals  heartbeat.Totals
		open    int64
		full    bool
		delta   heartbeat.Stats
		status  string
		seq     int64
		restart bool
	}
	steps := []want{
		{heartbeat.Totals{BytesOut: 100, BytesIn: 40, Connections: 3, RequestErrors: 1}, 2, false, heartbeat.Stats{TX: 100, RX: 40, Conns: 2, TotConns: 3, EReq: 1}, "OPEN", 0, false},
		{heartbeat.Totals{BytesOut: 250, BytesIn: 50, Connections: 5, RequestErrors: 1}, 7, true, heartbeat.Stats{TX: 150, RX: 10, Conns: 7, TotConns: 2}, "FULL", 1, false},
		// The agent restarts: seq starts again, deltas continue from the file.
		{heartbeat.Totals{BytesOut: 300, BytesIn: 60, Connections: 6, RequestErrors: 2}, 1, false, heartbeat.Stats{TX: 50, RX: 10, Conns: 1, TotConns: 1, EReq: 1}, "OPEN", 0, true},
		// The data plane restarts: its totals begin again.
		{heartbeat.Totals{BytesOut: 20, BytesIn: 5, Connections: 1}, 1, false, heartbeat.Stats{TX: 20, RX: 5, Conns: 1, TotConns: 1}, "OPEN", 1, false},
	}
	for i, st := range steps {
		if st.restart {
			s = heartbeat.NewSender(opts, src, heartbeat.Settings{Destinations: []string{r.addr}, Key: "sekrit"})
		}
		src.set(st.totals, st.open, st.full)
		if err := s.SendOnce(heartbeat.Settings{Destinations: []string{r.addr}, Key: "sekrit"}); err != nil {
			t.Fatal(err)
		}
		var m heartbeat.Message
		line := r.next(t)
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("step %d: Octavia's receiver said %q", i, line)
		}
		l1 := m.Listeners["l1"]
		if m.ID != "amp-1" || m.Ver != 3 || m.Seq != st.seq || len(m.Listeners) != 2 || l1.Status != st.status || l1.Stats != st.delta {
			t.Fatalf("step %d: decoded %+v; want seq %d, status %s, stats %+v and both listeners", i, m, st.seq, st.status, st.delta)
		}
		if p := m.Pools["p1:l1"]; p.Status != "UP" || p.Members["m2"] != "no check" || p.Members["m3"] != "DRAIN" {
			t.Fatalf("step %d: pools %+v", i, m.Pools)
		}
	}
	// A wrong key: Octavia drops the packet.
	if err := s.SendOnce(heartbeat.Settings{Destinations: []string{r.addr}, Key: "other"}); err != nil {
		t.Fatal(err)
	}
	if line := r.next(t); line != "DROPPED" {
		t.Fatalf("a heartbeat under another key was accepted: %s", line)
	}
	// A legacy 32-byte raw digest is what Octavia also accepts; ours is hex.
	data, err := heartbeat.Wrap(&heartbeat.Message{ID: "x", Ver: 3}, "k")
	if err != nil {
		t.Fatal(err)
	}
	if tail := data[len(data)-64:]; strings.ToLower(string(tail)) != string(tail) {
		t.Fatal("the HMAC trailer is not lowercase hex")
	}
	if _, err := heartbeat.Unwrap(data, "k"); err != nil {
		t.Fatal(err)
	}
}

// TestDestinationsRoundRobin: one datagram per interval, to one
// destination at a time, in turn; new settings apply at once.
func TestDestinationsRoundRobin(t *testing.T) {
	a, b := startReceiver(t, "k", 2), startReceiver(t, "k", 1)
	src := &source{}
	src.set(heartbeat.Totals{}, 0, false)
	s := heartbeat.NewSender(heartbeat.Options{AmphoraID: "amp-rr"}, src, heartbeat.Settings{Destinations: []string{a.addr, b.addr}, Key: "k"})
	for range 3 {
		if err := s.SendOnce(heartbeat.Settings{Destinations: []string{a.addr, b.addr}, Key: "k"}); err != nil {
			t.Fatal(err)
		}
	}
	var seqs []string
	for _, r := range []*receiver{a, a, b} {
		var m heartbeat.Message
		json.Unmarshal([]byte(r.next(t)), &m)
		seqs = append(seqs, fmt.Sprint(m.Seq))
	}
	if strings.Join(seqs, ",") != "0,2,1" {
		t.Fatalf("seqs by destination a,a,b: %v; want 0,2,1", seqs)
	}
}

// TestKeepalivedDownSkipsHeartbeats: with a keepalived configuration but
// no keepalived running, no heartbeat is sent, so the health manager fails
// the amphora over (Octavia's rule); with keepalived running, it is sent.
func TestKeepalivedDownSkipsHeartbeats(t *testing.T) {
	dir := t.TempDir()
	cfg, pid := filepath.Join(dir, "octavia-keepalived.conf"), filepath.Join(dir, "keepalived.pid")
	os.WriteFile(cfg, []byte("vrrp_instance x {}\n"), 0o600)
	src := &source{}
	src.set(heartbeat.Totals{}, 0, false)
	s := heartbeat.NewSender(heartbeat.Options{AmphoraID: "a", KeepalivedConfig: cfg, KeepalivedPID: pid}, src, heartbeat.Settings{})
	st := heartbeat.Settings{Destinations: []string{"127.0.0.1:9"}, Key: "k"}
	if err := s.SendOnce(st); err == nil || !strings.Contains(err.Error(), "keepalived") {
		t.Fatalf("no pid file: %v; want a skip", err)
	}
	dead := exec.Command("true")
	dead.Run()
	os.WriteFile(pid, []byte(fmt.Sprintf("%d\n", dead.Process.Pid)), 0o600)
	if err := s.SendOnce(st); err == nil {
		t.Fatal("a dead keepalived pid: heartbeat sent")
	}
	os.WriteFile(pid, []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o600)
	if err := s.SendOnce(st); err != nil {
		t.Fatalf("keepalived running: %v", err)
	}
}
