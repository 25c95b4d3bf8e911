package dataplane

import (
	"reflect"

	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/peersync"
)

// syncPeersLocked starts, replaces or stops the exchange of persistence
// entries with the peers cfg names. A peer exchange that cannot start is
// logged: it must not stop the data plane from serving. Call with p.mu
// held.
func (p *Plane) syncPeersLocked(cfg *config.Config) {
	if reflect.DeepEqual(cfg.Peers, p.peersCfg) {
		return
	}
	p.stopPeersLocked()
	want := cfg.Peers
	if want == nil {
		return
	}
	var local string
	var others []string
	for _, peer := range want.Peers {
		if peer.Name == want.Local {
			local = peer.Address
		} else {
			others = append(others, peer.Address)
		}
	}
	s, err := peersync.Start(local, others, peersync.Options{
		Key: []byte(want.Key), Listen: p.opts.Listen, Dial: p.opts.Dial, Logger: p.opts.Logger,
		Entries: func() []peersync.Entry {
			var out []peersync.Entry
			for _, e := range p.states.StickEntries() {
				out = append(out, peersync.Entry{Pool: e.Pool, Key: e.Key, Addr: e.Addr})
			}
			return out
		},
		Learn: func(e peersync.Entry) { p.states.Learn(e.Pool, e.Key, e.Addr) },
		Known: func(pool string) bool {
			cur := p.Current()
			return cur != nil && cur.Config.FindPool(pool) != nil
		},
	})
	if err != nil {
		p.opts.Logger.Error("persistence tables are not shared with the peers", "err", err)
		return
	}
	p.peers, p.peersCfg = s, want
	p.states.OnStick(func(pool, key, addr string) { s.Publish(peersync.Entry{Pool: pool, Key: key, Addr: addr}) })
	p.opts.Logger.Info("sharing persistence tables with the peers", "local", local, "peers", others)
}

// stopPeersLocked ends the peer exchange, if any. Call with p.mu held.
func (p *Plane) stopPeersLocked() {
	if p.peers == nil {
		return
	}
	p.states.OnStick(func(string, string, string) {})
	_ = p.peers.Close()
	p.peers, p.peersCfg = nil, nil
}
