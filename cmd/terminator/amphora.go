package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/vishvananda/netns"

	"github.com/terminator-proxy/terminator/amphora/agent"
	"github.com/terminator-proxy/terminator/amphora/agentconf"
	"github.com/terminator-proxy/terminator/amphora/heartbeat"
	"github.com/terminator-proxy/terminator/amphora/netplug"
	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/dataplane"
	"github.com/terminator-proxy/terminator/metrics"
)

// agentNet are the agent's network-side flags.
type agentNet struct {
	namespace string // "" leaves the network alone
	state     string // plugged-interfaces file
	nics      string // named namespace where Nova's NICs appear; "" the agent's own
}

// runAgent is "terminator agent --config FILE": the agent API, the data
// plane it drives and the heartbeats, until SIGTERM.
func runAgent(path string, drain time.Duration, no agentNet) int {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "terminator agent:", err)
		return 1
	}
	conf, err := agentconf.Parse(data)
	if err != nil {
		fmt.Fprintf(os.Stderr, "terminator agent: %s:\n%v\n", path, err)
		return 1
	}
	log := newLogger("text", "info")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	mx := metrics.New()
	mgrs, err := newManagers(ctx, nil, log, mx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "terminator agent:", err)
		return 1
	}
	// The data plane serves inside the namespace the VIP and member NICs
	// are plugged into, as haproxy does on an amphora.
	popts := dataplane.Options{Certs: mgrs.registry, Logger: log, Metrics: mx, DrainTimeout: drain}
	var plug *netplug.Plugger
	if no.namespace != "" {
		po := netplug.Options{Namespace: no.namespace, StateFile: no.state, Topology: conf.Topology}
		if no.nics != "" {
			host, err := netns.GetFromName(no.nics)
			if err != nil {
				fmt.Fprintf(os.Stderr, "terminator agent: --nic-namespace %s: %v\n", no.nics, err)
				return 1
			}
			defer host.Close()
			po.Host = host
		}
		plug = netplug.New(po)
		popts.Listen, popts.ListenPacket, popts.Dial = plug.Listen, plug.ListenPacket, plug.Dial
		// An amphora that rebooted gets its NICs back before any call.
		if err := plug.Restore(); err != nil {
			log.Error("plugged interfaces could not all be restored", "err", err)
		}
	}
	plane := dataplane.New(popts)
	hb := heartbeat.NewSender(heartbeat.Options{
		AmphoraID:        conf.AmphoraID,
		CountersFile:     filepath.Join(conf.BasePath, "stats_counters.json"),
		KeepalivedConfig: filepath.Join(conf.BasePath, "vrrp", "octavia-keepalived.conf"),
		KeepalivedPID:    filepath.Join(conf.BasePath, "vrrp", "octavia-keepalived.pid"),
		Logger:           log.With("component", "heartbeat"),
	}, planeHealth{plane, mx}, heartbeat.Settings{Destinations: conf.Heartbeat.Destinations, Interval: conf.Heartbeat.Interval, Key: conf.Heartbeat.Key})
	// keepalived's check script asks this process whether it serves, over
	// a unix socket (the script runs in the amphora namespace).
	health, healthSock, err := listenHealth(conf.BasePath, plane)
	if err != nil {
		fmt.Fprintln(os.Stderr, "terminator agent:", err)
		return 1
	}
	exe, _ := os.Executable()
	srv, err := agent.New(agent.Options{Config: conf, ConfigPath: path, Plane: agentPlane{plane, mgrs.registry},
		Net: plug, Heartbeat: hb, Version: version, Logger: log.With("component", "agent"),
		VRRPCheck: []string{exe, "agent", "check", "--socket", healthSock}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "terminator agent:", err)
		return 1
	}
	if err := srv.Restore(ctx); err != nil {
		log.Error("the configuration accepted before the restart could not be served", "err", err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(conf.BindHost, strconv.Itoa(conf.BindPort)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "terminator agent: haproxy_amphora.bind_host/bind_port:", err)
		return 1
	}
	bg, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 4)
	go func() { mgrs.run(bg); done <- struct{}{} }()
	go func() { hb.Run(bg); done <- struct{}{} }()
	go func() { _ = srv.Serve(ln); done <- struct{}{} }()
	go func() { _ = health.serve(); done <- struct{}{} }()
	log.Info("amphora agent listening", "addr", ln.Addr().String(), "amphora_id", conf.AmphoraID)
	sd := notifier{log}
	sd.ready("amphora agent " + conf.AmphoraID + " on " + ln.Addr().String() + "; " + servingStatus(plane))
	<-ctx.Done()
	sd.stopping()
	// keepalived goes first: the peer takes the VIP while this drains.
	health.stop()
	if err := srv.StopVRRP(); err != nil {
		log.Warn("stopping keepalived", "err", err)
	}
	sctx, c := context.WithTimeout(context.Background(), drain)
	defer c()
	_ = srv.Shutdown(sctx)
	_ = plane.Shutdown(sctx)
	cancel()
	for range 4 {
		<-done
	}
	return 0
}

// agentPlane shows the data plane to the agent.
type agentPlane struct {
	*dataplane.Plane
	certs *certs.Registry
}

func (p agentPlane) Check(ctx context.Context, cfg *config.Config) error {
	_, err := dataplane.Build(ctx, cfg, p.certs, metrics.New(), time.Now())
	return err
}

// planeHealth reports the data plane's listeners and pools for heartbeats:
// every listener of the serving configuration, with its counters, and
// every pool with its members' status.
type planeHealth struct {
	plane *dataplane.Plane
	mx    *metrics.Metrics
}

// memberStatus maps terminator's member status to haproxy's strings.
var memberStatus = map[string]string{"UP": "UP", "DOWN": "DOWN", "DRAIN": "DRAIN", "MAINT": "MAINT", "NO_CHECK": "no check"}

func (h planeHealth) Health() heartbeat.Report {
	r := heartbeat.Report{Listeners: map[string]heartbeat.ListenerReport{}, Pools: map[string]heartbeat.PoolStatus{}}
	snap := h.plane.Current()
	if snap == nil {
		return r
	}
	for _, l := range snap.Config.Listeners {
		if !l.Enabled() {
			continue
		}
		key := l.Key()
		open := int64(gauge(h.mx.ConnectionsActive, key))
		r.Listeners[key] = heartbeat.ListenerReport{
			Open: open, Full: open >= int64(l.EffectiveConnectionLimit()),
			Totals: heartbeat.Totals{
				BytesOut: int64(counter(h.mx.BytesOut, key)), BytesIn: int64(counter(h.mx.BytesIn, key)),
				Connections: int64(counter(h.mx.ConnectionsTotal, key)),
				// Request errors: connections refused as malformed.
				RequestErrors: int64(sumCounters(h.mx.HandshakeFailures, prometheus.Labels{"listener": key})),
			},
		}
	}
	for _, p := range snap.Config.Pools {
		if !p.Enabled() {
			continue
		}
		ps := heartbeat.PoolStatus{Status: heartbeat.PoolDown, Members: map[string]string{}}
		for _, m := range p.Members {
			name := m.Label()
			st := "no check"
			for s, hs := range memberStatus {
				if gauge(h.mx.MemberStatus, p.Key(), name, s) == 1 {
					st = hs
				}
			}
			id := m.ID // haproxy's server name: the member id
			if id == "" {
				id = name
			}
			ps.Members[id] = st
			if st == "UP" || st == "no check" {
				ps.Status = heartbeat.PoolUp
			}
		}
		r.Pools[p.Key()] = ps
	}
	return r
}

func gauge(v *prometheus.GaugeVec, labels ...string) float64 {
	g, err := v.GetMetricWithLabelValues(labels...)
	if err != nil {
		return 0
	}
	var m dto.Metric
	if g.Write(&m) != nil || m.Gauge == nil {
		return 0
	}
	return m.Gauge.GetValue()
}

func counter(v *prometheus.CounterVec, labels ...string) float64 {
	c, err := v.GetMetricWithLabelValues(labels...)
	if err != nil {
		return 0
	}
	var m dto.Metric
	if c.Write(&m) != nil || m.Counter == nil {
		return 0
	}
	return m.Counter.GetValue()
}

// sumCounters adds every series of v whose labels include match.
func sumCounters(v *prometheus.CounterVec, match prometheus.Labels) float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() { v.Collect(ch); close(ch) }()
	total := 0.0
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil || d.Counter == nil {
			continue
		}
		ok := true
		for k, want := range match {
			found := false
			for _, lp := range d.Label {
				if lp.GetName() == k && lp.GetValue() == want {
					found = true
				}
			}
			ok = ok && found
		}
		if ok {
			total += d.Counter.GetValue()
		}
	}
	return total
}
