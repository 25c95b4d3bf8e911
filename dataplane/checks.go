package dataplane

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/health"
	"github.com/terminator-proxy/terminator/proxy/lb"
)

// memberStatuses are Octavia's operating statuses for members.
var memberStatuses = []string{"UP", "DOWN", "DRAIN", "MAINT", "NO_CHECK"}

// checks are the health-check goroutines of one snapshot.
type checks struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// restartChecksLocked stops the previous snapshot's checks (without
// waiting: a probe in flight must not delay a reload; p.draining tracks
// them) and starts one goroutine per monitored member of cfg. Health state
// lives in p.states, so it carries over. Call with p.mu held.
func (p *Plane) restartChecksLocked(cfg *config.Config) {
	if old := p.checks; old != nil {
		old.cancel()
		p.draining.Add(1)
		go func() { defer p.draining.Done(); old.wg.Wait() }()
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &checks{cancel: cancel}
	p.checks = c
	for _, pl := range cfg.Pools {
		if !pl.Enabled() {
			continue // Octavia renders no backend, so nothing is checked
		}
		hm := pl.HealthMonitor
		for _, m := range pl.Members {
			addr, label := m.HostPort(), m.Label()
			status := "NO_CHECK"
			monitored := hm != nil && (hm.AdminStateUp == nil || *hm.AdminStateUp)
			switch {
			case !m.Enabled():
				status = "MAINT"
			case *m.Weight == 0:
				status = "DRAIN"
			case monitored:
				status = "UP"
				if p.states.MemberState(pl.Key(), addr).Down() {
					status = "DOWN"
				}
			}
			p.setStatus(pl.Key(), label, status)
			if !monitored || !m.Enabled() {
				continue
			}
			probe, err := newProbe(hm)
			if err != nil {
				p.opts.Logger.Error("health monitor not started", "pool", pl.Key(), "err", err)
				continue
			}
			probe.Dial = p.opts.Dial
			target := addr
			if m.MonitorAddress != "" || m.MonitorPort != 0 {
				host, port := m.Address, m.ProtocolPort
				if m.MonitorAddress != "" {
					host = m.MonitorAddress
				}
				if m.MonitorPort != 0 {
					port = m.MonitorPort
				}
				target = net.JoinHostPort(host, strconv.Itoa(port))
			}
			c.wg.Add(1)
			go p.checkLoop(ctx, c, pl.Key(), label, target, p.states.MemberState(pl.Key(), addr), probe, hm)
		}
	}
}

func newProbe(hm *config.HealthMonitor) (*health.Probe, error) {
	version := ""
	if hm.HTTPVersion != nil {
		version = fmt.Sprintf("%.1f", *hm.HTTPVersion)
	}
	return health.NewProbe(hm.Type, hm.HTTPMethod, hm.URLPath, version, hm.DomainName, hm.ExpectedCodes, time.Duration(hm.Timeout)*time.Second)
}

// checkLoop probes one member every delay (the first after a random part
// of it, to spread checks) until ctx is done.
func (p *Plane) checkLoop(ctx context.Context, c *checks, pool, member, target string, st *lb.MemberState, probe *health.Probe, hm *config.HealthMonitor) {
	defer c.wg.Done()
	delay := time.Duration(hm.Delay) * time.Second
	wait := time.Duration(rand.Int64N(int64(delay)))
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = delay
		err := probe.Check(ctx, target)
		if ctx.Err() != nil {
			return
		}
		if st.Report(err == nil, hm.MaxRetries, hm.MaxRetriesDown) {
			status := "UP"
			if st.Down() {
				status = "DOWN"
				p.opts.Logger.Warn("member DOWN", "pool", pool, "member", member, "check", target, "err", err)
			} else {
				p.opts.Logger.Info("member UP", "pool", pool, "member", member, "check", target)
			}
			p.setStatus(pool, member, status)
		}
	}
}

func (p *Plane) setStatus(pool, member, status string) {
	for _, s := range memberStatuses {
		v := 0.0
		if s == status {
			v = 1
		}
		p.opts.Metrics.MemberStatus.WithLabelValues(pool, member, s).Set(v)
	}
}
