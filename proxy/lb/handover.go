package lb

import (
	"errors"
	"strings"
)

// MemberRecord is one member's health as handed to a new process.
type MemberRecord struct {
	Pool   string `json:"pool"`
	Addr   string `json:"addr"`
	Down   bool   `json:"down,omitempty"`
	Streak int64  `json:"streak,omitempty"`
}

// StatesRecord is what a binary upgrade carries of States: health-check
// results, so DOWN members stay DOWN, and the persistence tables, so a
// client keeps its member.
type StatesRecord struct {
	Members []MemberRecord               `json:"members,omitempty"`
	Sticky  map[string]map[string]string `json:"sticky,omitempty"`
}

// Export copies the states for a successor process.
func (s *States) Export() StatesRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r StatesRecord
	for k, st := range s.m {
		pool, addr, _ := strings.Cut(k, "\x00")
		r.Members = append(r.Members, MemberRecord{Pool: pool, Addr: addr, Down: st.down.Load(), Streak: st.streak.Load()})
	}
	for pool, t := range s.tables {
		t.mu.Lock()
		m := make(map[string]string, len(t.m))
		for k, v := range t.m {
			m[k] = v
		}
		t.mu.Unlock()
		if r.Sticky == nil {
			r.Sticky = map[string]map[string]string{}
		}
		r.Sticky[pool] = m
	}
	return r
}

// Import takes over a predecessor's states; call it before the first
// snapshot is built. A table larger than a pool's bound is refused rather
// than trimmed at random.
func (s *States) Import(r StatesRecord) error {
	for pool, m := range r.Sticky {
		if len(m) > stickTableSize {
			return errors.New("lb: stick table of pool " + pool + " exceeds its bound")
		}
	}
	for _, mr := range r.Members {
		st := s.get(mr.Pool, mr.Addr)
		st.down.Store(mr.Down)
		st.streak.Store(mr.Streak)
	}
	for pool, m := range r.Sticky {
		t := s.table(pool)
		t.mu.Lock()
		for k, v := range m {
			t.m[k] = v
		}
		t.mu.Unlock()
	}
	return nil
}
