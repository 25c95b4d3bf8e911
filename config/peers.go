package config

// validatePeers checks the peers section.
func (c *Config) validatePeers(v *collector) {
	p := c.Peers
	if p == nil {
		return
	}
	names, local := map[string]bool{}, false
	for i, peer := range p.Peers {
		if peer.Name == "" || names[peer.Name] {
			v.errorf(at("peers.peers", i, "name"), "every peer needs a name of its own")
		}
		names[peer.Name] = true
		local = local || peer.Name == p.Local
		checkBind(v, at("peers.peers", i, "address"), peer.Address)
	}
	if !local {
		v.errorf("peers.local", "%q is not one of the peers", p.Local)
	}
	if len(p.Key) < 16 {
		v.errorf("peers.key", "must be at least 16 bytes: it authenticates every update")
	}
}
