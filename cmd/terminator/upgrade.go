package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/terminator-proxy/terminator/dataplane"
	"github.com/terminator-proxy/terminator/metrics"
	"github.com/terminator-proxy/terminator/proxy/sockio"
	"github.com/terminator-proxy/terminator/upgrade"
)

// Socket kinds, the first words of a handed-over socket's name.
const (
	sockData    = "data tcp" // the data plane's names are "tcp <bind>" and "udp <bind>"
	sockDataUDP = "data udp"
	sockAdmin   = "admin"
	sockControl = "control"
)

// binder binds the sockets of serve: the ones inherited from the process
// this one replaces (a binary upgrade) first, new ones otherwise.
type binder struct{ inh *upgrade.Inheritance }

func (b binder) listen(kind, addr string) (net.Listener, error) {
	ln, ok, err := b.inh.Listener(kind + " " + addr)
	if ok || err != nil {
		return ln, err
	}
	return sockio.Listen("tcp", addr)
}

func (b binder) listenPacket(addr string) (net.PacketConn, error) {
	pc, ok, err := b.inh.PacketConn(sockDataUDP + " " + addr)
	if ok || err != nil {
		return pc, err
	}
	return net.ListenPacket("udp", addr)
}

// adopt gives the plane the predecessor's ticket keys and member state.
func (b binder) adopt(plane *dataplane.Plane) error {
	if b.inh == nil {
		return nil
	}
	var h dataplane.Handover
	if err := json.Unmarshal(b.inh.State, &h); err != nil {
		return fmt.Errorf("binary upgrade: the predecessor's state: %w", err)
	}
	return plane.Adopt(h)
}

// serving tells the predecessor, if any, that this process serves, closing
// the inherited sockets the configuration no longer binds first; it
// returns when this process is the main one.
func (b binder) serving(log *slog.Logger) error {
	if b.inh == nil {
		return nil
	}
	if unused := b.inh.CloseUnused(); len(unused) > 0 {
		log.Info("binary upgrade: closed inherited sockets the configuration no longer has", "sockets", unused)
	}
	if err := b.inh.Ready(30 * time.Second); err != nil {
		return err
	}
	log.Info("binary upgrade: this process took over")
	return nil
}

// upgrader starts the new binary on SIGUSR2.
type upgrader struct {
	exe     string   // the path this binary was started from
	args    []string // its arguments
	timeout time.Duration
	pidfile string // rewritten by the successor; a failure goes beside it
}

// handOver starts the binary now at u.exe with every listening socket and
// the plane's state, and once it is ready makes it systemd's main process.
// On error the new binary is gone and this process serves on.
func (u upgrader) handOver(ctx context.Context, plane *dataplane.Plane, others map[string]net.Listener, sd notifier, log *slog.Logger, mx *metrics.Metrics) (int, error) {
	pid, err := u.start(ctx, plane, others, sd)
	if err != nil {
		mx.UpgradesFailed.Inc()
		log.Error("binary upgrade failed; this process keeps serving", "binary", u.exe, "err", err)
		sd.ready("binary upgrade failed, the running binary keeps serving: " + firstLine(err.Error()))
		if u.pidfile != "" {
			if werr := os.WriteFile(u.pidfile+upgradeSuffix, []byte("failed: "+err.Error()+"\n"), 0o644); werr != nil {
				log.Warn("could not record the failed upgrade beside the pidfile", "err", werr)
			}
		}
		return 0, err
	}
	log.Info("binary upgrade: handed over; draining", "pid", pid)
	return pid, nil
}

func (u upgrader) start(ctx context.Context, plane *dataplane.Plane, others map[string]net.Listener, sd notifier) (int, error) {
	if u.exe == "" {
		return 0, fmt.Errorf("the path of the running binary is unknown")
	}
	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	data, err := plane.ListenerFiles()
	if err != nil {
		return 0, err
	}
	for name, f := range data {
		files["data "+name] = f
	}
	for name, ln := range others {
		fl, ok := ln.(interface{ File() (*os.File, error) })
		if !ok {
			return 0, fmt.Errorf("%s socket has no descriptor", name)
		}
		f, err := fl.File()
		if err != nil {
			return 0, fmt.Errorf("%s socket: %w", name, err)
		}
		files[name] = f
	}
	state, err := json.Marshal(plane.Handover())
	if err != nil {
		return 0, err
	}
	sd.send("STATUS=binary upgrade: starting " + u.exe)
	succ, err := upgrade.Start(ctx, upgrade.Spec{Path: u.exe, Args: u.args, Files: files, State: state, Timeout: u.timeout})
	if err != nil {
		return 0, err
	}
	pid := succ.Pid()
	sd.send(fmt.Sprintf("MAINPID=%d", pid), fmt.Sprintf("STATUS=handed over to pid %d", pid))
	// A failed write is harmless: the successor takes a closed socket
	// as the same "you are the main process".
	_ = succ.Release()
	return pid, nil
}
