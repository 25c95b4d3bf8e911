package proxy

import (
	"net"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/terminator-proxy/terminator/metrics"
)

// Member is one backend server. It is immutable once its pool is built.
type Member struct {
	Name string // for logs and metrics; the address when the config has none
	Addr string // host:port

	requests [6]prometheus.Counter // by status class: 0 (no response), 1xx … 5xx
	errors   func(reason string) prometheus.Counter
}

// MemberSpec describes a member for NewPool.
type MemberSpec struct {
	Name    string
	Address string
	Port    int
	Weight  int
	Backup  bool
	Enabled bool
}

// Pool selects members by smooth weighted round robin. Its schedule is
// computed once, so selection is one atomic add and no allocation.
type Pool struct {
	Name     string
	members  []*Member
	schedule []int32 // indices into members, in smooth-WRR order
	backups  []int32 // members used only when there is no primary
	next     atomic.Uint64
}

// NewPool builds a pool. Members with weight 0 or admin_state_up false take
// no traffic; backup members serve only when no primary can. mx may be nil.
func NewPool(name string, specs []MemberSpec, mx *metrics.Metrics) *Pool {
	p := &Pool{Name: name}
	var primary, backup []weighted
	for _, s := range specs {
		addr := net.JoinHostPort(s.Address, strconv.Itoa(s.Port))
		label := s.Name
		if label == "" {
			label = addr
		}
		m := &Member{Name: label, Addr: addr}
		bindMember(mx, name, m)
		p.members = append(p.members, m)
		if !s.Enabled || s.Weight <= 0 {
			continue
		}
		w := weighted{idx: int32(len(p.members) - 1), weight: s.Weight}
		if s.Backup {
			backup = append(backup, w)
		} else {
			primary = append(primary, w)
		}
	}
	p.schedule = smoothSchedule(primary)
	p.backups = smoothSchedule(backup)
	return p
}

// Next returns the member for the next request, or nil when none can take
// traffic.
func (p *Pool) Next() *Member {
	sched := p.schedule
	if len(sched) == 0 {
		sched = p.backups
	}
	if len(sched) == 0 {
		return nil
	}
	n := p.next.Add(1) - 1
	return p.members[sched[n%uint64(len(sched))]]
}

// Members returns every member of the pool, including those that take no
// traffic. The caller must not modify them.
func (p *Pool) Members() []*Member { return p.members }

type weighted struct {
	idx    int32
	weight int
}

// smoothSchedule expands weights into nginx's smooth weighted round-robin
// order: each member appears weight times, spread as evenly as possible.
// The schedule has at most 256 entries per member (Octavia's max weight).
func smoothSchedule(ms []weighted) []int32 {
	total := 0
	for _, m := range ms {
		total += m.weight
	}
	out := make([]int32, 0, total)
	current := make([]int, len(ms))
	for range total {
		best := -1
		for i, m := range ms {
			current[i] += m.weight
			if best < 0 || current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		out = append(out, ms[best].idx)
	}
	return out
}
