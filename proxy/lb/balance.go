package lb

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Load-balancing algorithms, by Octavia's names.
const (
	RoundRobin       = "ROUND_ROBIN"
	LeastConnections = "LEAST_CONNECTIONS"
	SourceIP         = "SOURCE_IP"
)

// MemberState is what outlives a configuration generation for one member
// of one pool: its requests in progress and its health. Reloads look it up
// by pool and address, so a reload resets neither.
type MemberState struct {
	active atomic.Int64
	down   atomic.Bool  // a health monitor marked it DOWN
	streak atomic.Int64 // consecutive results: >0 successes, <0 failures

	// Passive detection (haproxy's observe/error-limit): consecutive
	// connect failures or a burst of 5xx answers take the member out of
	// rotation until passiveUntil (unix nanoseconds; 0: not out).
	passiveUntil atomic.Int64
	connFails    atomic.Int64
	errWindow    atomic.Int64 // unix seconds of the current 5xx window
	errCount     atomic.Int64
}

// Passive detection thresholds.
const (
	passiveConnectFailures = 3                // consecutive refused connections
	passiveErrorBurst      = 10               // 5xx answers within passiveWindow
	passiveWindow          = 10               // seconds
	PassiveHold            = 10 * time.Second // how long the member stays out
)

// Unavailable reports whether the member is DOWN by health check or held
// out by passive detection.
func (s *MemberState) Unavailable() bool {
	if s.down.Load() {
		return true
	}
	pu := s.passiveUntil.Load()
	return pu != 0 && time.Now().UnixNano() < pu
}

// ConnectFailed records a refused or failed connection; it reports true
// when the member is now held out.
func (s *MemberState) ConnectFailed() bool {
	if s.connFails.Add(1) >= passiveConnectFailures {
		s.connFails.Store(0)
		s.passiveUntil.Store(time.Now().Add(PassiveHold).UnixNano())
		return true
	}
	return false
}

// Answered records a member's response status; it reports true when a
// burst of 5xx answers holds the member out.
func (s *MemberState) Answered(status int) bool {
	s.connFails.Store(0)
	if status < 500 {
		return false
	}
	now := time.Now().Unix()
	if w := s.errWindow.Load(); now-w >= passiveWindow {
		s.errWindow.Store(now)
		s.errCount.Store(0)
	}
	if s.errCount.Add(1) >= passiveErrorBurst {
		s.errCount.Store(0)
		s.passiveUntil.Store(time.Now().Add(PassiveHold).UnixNano())
		return true
	}
	return false
}

// Down reports whether health checks marked the member DOWN.
func (s *MemberState) Down() bool { return s.down.Load() }

// Report records a health-check result: rise consecutive successes bring a
// DOWN member UP, fall consecutive failures bring an UP member DOWN (as
// haproxy's rise and fall). It returns true when the status changed.
func (s *MemberState) Report(ok bool, rise, fall int) bool {
	var n int64
	if ok {
		n = max(s.streak.Load(), 0) + 1
	} else {
		n = min(s.streak.Load(), 0) - 1
	}
	s.streak.Store(n)
	switch {
	case ok && s.down.Load() && n >= int64(rise):
		s.down.Store(false)
		return true
	case !ok && !s.down.Load() && -n >= int64(fall):
		s.down.Store(true)
		return true
	}
	return false
}

// MemberState returns the state of addr in pool (created on first use).
func (s *States) MemberState(pool, addr string) *MemberState { return s.get(pool, addr) }

// Active returns the member's requests in progress.
func (s *MemberState) Active() int64 { return s.active.Load() }

// AddActive adds delta to the member's requests in progress.
func (s *MemberState) AddActive(delta int64) { s.active.Add(delta) }

// States holds the MemberStates of every pool; it is safe for concurrent
// use and lives as long as the process.
type States struct {
	mu      sync.Mutex // guards m and tables
	m       map[string]*MemberState
	tables  map[string]*stickTable // persistence tables by pool
	onStick atomic.Pointer[func(pool, key, addr string)]
}

// NewStates returns an empty set.
func NewStates() *States { return &States{m: map[string]*MemberState{}} }

func (s *States) get(pool, addr string) *MemberState {
	if s == nil {
		return &MemberState{}
	}
	key := pool + "\x00" + addr
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.m[key]
	if !ok {
		st = &MemberState{}
		s.m[key] = st
	}
	return st
}

// Retain drops the states of members not in keep (pool -> addresses);
// call it after each reload.
func (s *States) Retain(keep map[string][]string) {
	live := map[string]bool{}
	for pool, addrs := range keep {
		for _, a := range addrs {
			live[pool+"\x00"+a] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.m {
		if !live[k] {
			delete(s.m, k)
		}
	}
}

// leastConnections picks, among members, the one with the fewest requests
// in progress relative to its weight ((active+1)/weight), starting the scan
// at a rotating offset so ties are spread.
func (p *Pool) leastConnections(ms []weighted) *Member {
	start := int(p.next.Add(1) % uint64(len(ms)))
	best, bestScore := -1, math.MaxFloat64
	for i := range ms {
		w := ms[(start+i)%len(ms)]
		if !p.members[w.idx].takesNew() {
			continue
		}
		score := float64(p.members[w.idx].state.active.Load()+1) / float64(w.weight)
		if score < bestScore {
			best, bestScore = int(w.idx), score
		}
	}
	if best < 0 {
		return nil
	}
	return p.members[best]
}

// sourceIP picks by weighted rendezvous hashing of the client address: a
// client keeps its member while the member set is unchanged, and when a
// member is added or removed only the clients of that member move. The
// hash is deterministic, so every instance and every restart agree.
func (p *Pool) sourceIP(ms []weighted, client string) *Member {
	h := fnv64(client)
	best, bestScore := -1, math.Inf(-1)
	for _, w := range ms {
		m := p.members[w.idx]
		if !m.takesNew() {
			continue // persistence yields to health: the next-best member takes the client
		}
		x := mix64(h ^ m.hash)
		// Weighted HRW: -w / ln(u), u uniform in (0,1).
		u := (float64(x>>11) + 0.5) / (1 << 53)
		score := -float64(w.weight) / math.Log(u)
		if score > bestScore {
			best, bestScore = int(w.idx), score
		}
	}
	if best < 0 {
		return nil
	}
	return p.members[best]
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix64 is splitmix64's finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
