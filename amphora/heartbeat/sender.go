package heartbeat

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Source reports what a heartbeat says: every enabled listener with its
// state, open connections and totals, and every pool with its members.
type Source interface {
	Health() Report
}

// Report is a Source's view at one moment.
type Report struct {
	Listeners map[string]ListenerReport
	Pools     map[string]PoolStatus // keyed "<pool_id>:<listener_id>"
}

// ListenerReport is one listener's state and absolute counters.
type ListenerReport struct {
	Full   bool // at its connection limit
	Open   int64
	Totals Totals
}

// Settings are the mutable [health_manager] options.
type Settings struct {
	Destinations []string // host:port, IPv6 bracketed
	Interval     time.Duration
	Key          string
}

// Options configure a Sender.
type Options struct {
	AmphoraID string
	// CountersFile is base_path/stats_counters.json.
	CountersFile string
	// KeepalivedConfig and KeepalivedPID are base_path/vrrp/
	// octavia-keepalived.conf and its pid file: while the config exists
	// and keepalived is not running, no heartbeat is sent, so that the
	// health manager fails the amphora over.
	KeepalivedConfig, KeepalivedPID string
	Logger                          *slog.Logger
}

// Sender sends heartbeats until its context ends.
type Sender struct {
	opts     Options
	src      Source
	counters *counters
	seq      int64
	next     int // round-robin position

	mu       sync.Mutex
	settings Settings
	changed  chan struct{}
}

// NewSender returns a sender of src's health with the given settings.
func NewSender(o Options, src Source, s Settings) *Sender {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Sender{opts: o, src: src, counters: loadCounters(o.CountersFile), settings: s, changed: make(chan struct{}, 1)}
}

// Update replaces the destinations, interval and key; they apply from the
// next heartbeat (PUT /1.0/config).
func (s *Sender) Update(st Settings) {
	s.mu.Lock()
	s.settings = st
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *Sender) current() Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settings
}

// Run sends a heartbeat now and then once per interval until ctx is done.
func (s *Sender) Run(ctx context.Context) {
	for {
		st := s.current()
		if err := s.SendOnce(st); err != nil {
			s.opts.Logger.Warn("heartbeat not sent", "err", err)
		}
		interval := st.Interval
		if interval <= 0 {
			interval = 10 * time.Second
		}
		timer := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-s.changed:
			timer.Stop() // new settings: send with them now
		case <-timer.C:
		}
	}
}

// errSkipped means keepalived is configured but not running.
var errSkipped = errors.New("keepalived is configured but not running; heartbeat skipped so that the amphora fails over")

// SendOnce builds one heartbeat and sends it to the next destination.
func (s *Sender) SendOnce(st Settings) error {
	if s.keepalivedDown() {
		return errSkipped
	}
	if len(st.Destinations) == 0 {
		return errors.New("no controller_ip_port_list destinations")
	}
	msg := s.Build()
	data, err := Wrap(msg, st.Key)
	if err != nil {
		return err
	}
	dest := st.Destinations[s.next%len(st.Destinations)]
	s.next++
	conn, err := net.Dial("udp", dest)
	if err == nil {
		_, err = conn.Write(data)
		conn.Close()
	}
	if err != nil {
		// As Octavia's sender, a failed send is not fatal: the next
		// interval tries the next destination.
		s.opts.Logger.Debug("heartbeat send failed", "dest", dest, "err", err)
	}
	return nil
}

// Build makes the next message from the source, computing the deltas and
// persisting the counters.
func (s *Sender) Build() *Message {
	r := s.src.Health()
	msg := &Message{ID: s.opts.AmphoraID, Seq: s.seq, Ver: Version,
		Listeners: make(map[string]ListenerStatus, len(r.Listeners)), Pools: r.Pools}
	if msg.Pools == nil {
		msg.Pools = map[string]PoolStatus{}
	}
	s.seq++
	for id, l := range r.Listeners {
		tx, rx, tot, ereq := s.counters.delta(id, l.Totals)
		status := ListenerOpen
		if l.Full {
			status = ListenerFull
		}
		msg.Listeners[id] = ListenerStatus{Status: status, Stats: Stats{TX: tx, RX: rx, Conns: l.Open, TotConns: tot, EReq: ereq}}
	}
	if err := s.counters.save(); err != nil {
		s.opts.Logger.Warn("heartbeat: could not persist the statistics counters", "file", s.opts.CountersFile, "err", err)
	}
	return msg
}

// keepalivedDown applies the no-keepalived rule: the config exists but no
// keepalived runs under the pid in its pid file.
func (s *Sender) keepalivedDown() bool {
	if s.opts.KeepalivedConfig == "" {
		return false
	}
	if _, err := os.Stat(s.opts.KeepalivedConfig); err != nil {
		return false
	}
	data, err := os.ReadFile(s.opts.KeepalivedPID)
	if err != nil {
		return true
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0]))
	if err != nil || pid <= 0 {
		return true
	}
	return syscall.Kill(pid, 0) != nil && !errors.Is(syscall.Kill(pid, 0), syscall.EPERM)
}
