package udprelay

import (
	"hash/fnv"
	"math"
	"net/netip"
	"time"
)

// compiled is a Spec with its lookups built once.
type compiled struct {
	*Spec
	byAddr map[string]int
	state  map[string]*memberState // filled by Update
	next   uint64                  // rotating start of LEAST_CONNECTIONS scans; the reader's only
}

func compile(s *Spec) *compiled {
	c := &compiled{Spec: s, byAddr: map[string]int{}, state: map[string]*memberState{}}
	for i, m := range s.Members {
		c.byAddr[m.Addr] = i
	}
	return c
}

func (c *compiled) allows(a netip.Addr) bool {
	if len(c.Allowed) == 0 {
		return true
	}
	for _, p := range c.Allowed {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// usable reports whether an existing flow may stay on the member: it is
// still in the pool, not DOWN and not refusing. Weight 0 keeps flows.
func (c *compiled) usable(addr string) bool {
	i, ok := c.byAddr[addr]
	if !ok {
		return false
	}
	m := &c.Members[i]
	return (m.Health == nil || !m.Health.Down()) && !refusing(c.state[addr])
}

// eligible reports whether the member may take a new flow.
func (c *compiled) eligible(m *Member) bool {
	st := c.state[m.Addr]
	return m.Weight > 0 && (m.Health == nil || !m.Health.Down()) && !refusing(st) &&
		(c.MemberFlowLimit <= 0 || st.flows.Load() < int64(c.MemberFlowLimit))
}

func refusing(st *memberState) bool {
	until := st.refused.Load()
	return until != 0 && time.Now().UnixNano() < until
}

// pick chooses the member of a new flow from client, and the persistence
// key the flow holds (invalid when the pool does not persist).
func (r *Relay) pick(c *compiled, client netip.Addr) (*Member, netip.Addr) {
	var key netip.Addr
	if c.PersistTimeout > 0 {
		bits := c.PersistV6Bits
		if client.Is4() {
			bits = c.PersistV4Bits
		}
		p, _ := client.Prefix(bits)
		key = p.Addr()
		r.mu.Lock()
		s, ok := r.sticky[key]
		r.mu.Unlock()
		if ok && (s.flows > 0 || time.Now().Before(s.expires)) {
			if i, ok := c.byAddr[s.addr]; ok && c.eligible(&c.Members[i]) {
				return &c.Members[i], key
			}
		}
		if !r.makeRoom(key) {
			key = netip.Addr{} // the table is full: served, not persisted
		}
	}
	var m *Member
	switch c.Algorithm {
	case LeastConnections:
		m = c.leastConnections()
	case SourceIP:
		m = c.sourceIP(client)
	default:
		m = c.roundRobin()
	}
	return m, key
}

// makeRoom makes sure the persistence table can take key, dropping expired
// entries when it is full; it bounds the table at MaxFlows entries.
func (r *Relay) makeRoom(key netip.Addr) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.sticky[key]; ok || len(r.sticky) < r.opts.MaxFlows {
		return true
	}
	now := time.Now()
	for k, s := range r.sticky {
		if s.flows == 0 && now.After(s.expires) {
			delete(r.sticky, k)
		}
	}
	return len(r.sticky) < r.opts.MaxFlows
}

// roundRobin is smooth weighted round robin (nginx's): every pick adds
// each eligible member's weight to its credit and takes the richest.
func (c *compiled) roundRobin() *Member {
	var best *Member
	var bestSt *memberState
	total := 0
	for i := range c.Members {
		m := &c.Members[i]
		if !c.eligible(m) {
			continue
		}
		st := c.state[m.Addr]
		st.current += m.Weight
		total += m.Weight
		if best == nil || st.current > bestSt.current {
			best, bestSt = m, st
		}
	}
	if best != nil {
		bestSt.current -= total
	}
	return best
}

// leastConnections takes the member with the fewest flows for its weight,
// scanning from a rotating start so that ties spread.
func (c *compiled) leastConnections() *Member {
	n := len(c.Members)
	if n == 0 {
		return nil
	}
	c.next++
	var best *Member
	bestScore := math.MaxFloat64
	for k := range n {
		m := &c.Members[(int(c.next)+k)%n]
		if !c.eligible(m) {
			continue
		}
		if score := float64(c.state[m.Addr].flows.Load()+1) / float64(m.Weight); score < bestScore {
			best, bestScore = m, score
		}
	}
	return best
}

// sourceIP hashes the client address over the eligible members' weights.
func (c *compiled) sourceIP(client netip.Addr) *Member {
	total := 0
	for i := range c.Members {
		if c.eligible(&c.Members[i]) {
			total += c.Members[i].Weight
		}
	}
	if total == 0 {
		return nil
	}
	h := fnv.New32a()
	b := client.As16()
	h.Write(b[:])
	point := int(h.Sum32() % uint32(total))
	for i := range c.Members {
		m := &c.Members[i]
		if !c.eligible(m) {
			continue
		}
		if point < m.Weight {
			return m
		}
		point -= m.Weight
	}
	return nil
}
