package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/proxy/lb"
	"github.com/terminator-proxy/terminator/udprelay"
)

// UDPSnapshot is one UDP listener's part of a snapshot.
type UDPSnapshot struct {
	Key  string
	Bind string
	Spec *udprelay.Spec
}

// udpListener builds the relay spec of a UDP listener: its default pool's
// members, their health from states, its persistence and limits.
func udpListener(l *config.Listener, cfg *config.Config, states *lb.States) *udprelay.Spec {
	spec := &udprelay.Spec{Listener: l.Key()}
	if limit := l.ConnectionLimit; limit != nil && *limit > 0 {
		spec.MemberFlowLimit = *limit // keepalived's uthreshold, per member
	}
	for _, c := range l.AllowedCIDRs {
		spec.Allowed = append(spec.Allowed, netip.MustParsePrefix(c).Masked()) // validated
	}
	pl := cfg.FindPool(l.PoolRef())
	if pl == nil || !pl.Enabled() {
		return spec // no pool, or a disabled one: datagrams are dropped
	}
	spec.Pool, spec.Algorithm = pl.Key(), pl.LBAlgorithm
	if sp := pl.SessionPersistence; sp != nil && sp.Type == "SOURCE_IP" {
		timeout := 360 // Octavia's template default
		if sp.PersistenceTimeout != nil && *sp.PersistenceTimeout > 0 {
			timeout = *sp.PersistenceTimeout
		}
		g, _ := config.ParseGranularity(sp.PersistenceGranularity) // validated
		spec.PersistTimeout = time.Duration(timeout) * time.Second
		spec.PersistV4Bits, spec.PersistV6Bits = g.V4, g.V6
	}
	for _, m := range pl.Members {
		if !m.Enabled() {
			continue // Octavia renders no real_server for it
		}
		addr := m.HostPort()
		spec.Members = append(spec.Members, udprelay.Member{
			ID: m.ID, Label: m.Label(), Addr: addr, Weight: *m.Weight, Health: states.MemberState(pl.Key(), addr),
		})
	}
	return spec
}

// bindUDP binds the sockets of the snapshot's new UDP listeners; on error
// it closes what it bound. Call with p.mu held.
func (p *Plane) bindUDP(snap *Snapshot) (map[string]net.PacketConn, error) {
	fresh := map[string]net.PacketConn{}
	for _, u := range snap.UDP {
		if p.relays[u.Bind] != nil {
			continue
		}
		pc, err := p.opts.ListenPacket("udp", u.Bind)
		if err != nil {
			for _, f := range fresh {
				f.Close()
			}
			return nil, fmt.Errorf("listener %s: binding udp %s: %w", u.Key, u.Bind, err)
		}
		fresh[u.Bind] = pc
	}
	return fresh, nil
}

// switchUDP serves the snapshot's UDP listeners: new relays on the fresh
// sockets, new specs for the others, removed ones closed (a datagram
// relay has nothing to drain). Call with p.mu held.
func (p *Plane) switchUDP(snap *Snapshot, fresh map[string]net.PacketConn) {
	keep := map[string]bool{}
	for _, u := range snap.UDP {
		keep[u.Bind] = true
		if pc, ok := fresh[u.Bind]; ok {
			p.relays[u.Bind] = udprelay.New(pc, u.Spec, udprelay.Options{Dial: p.opts.Dial, Logger: p.opts.Logger, Metrics: p.opts.Metrics})
		} else {
			p.relays[u.Bind].Update(u.Spec)
		}
	}
	for bind, r := range p.relays {
		if !keep[bind] {
			delete(p.relays, bind)
			if err := r.Close(); err != nil {
				p.opts.Logger.Warn("closing a removed UDP listener", "bind", bind, "err", err)
			}
		}
	}
}
