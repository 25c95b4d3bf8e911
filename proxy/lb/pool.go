package lb

import (
	"crypto/tls"
	"net"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/terminator-proxy/terminator/metrics"
)

// Member is one backend server. It is immutable once its pool is built.
type Member struct {
	Name string // for logs and metrics; the address when the config has none
	Addr string // host:port
	pool string // its pool's name, for the access log

	state    *MemberState // survives reloads
	hash     uint64       // of Addr, for SOURCE_IP
	cookie   string       // HTTP_COOKIE value
	serving  bool         // enabled with a weight above 0
	maxConns int          // requests in progress at most; 0: no cap

	requests [6]prometheus.Counter // by status class: 0 (no response), 1xx … 5xx
	errors   func(reason string) prometheus.Counter
}

// MemberSpec describes a member for NewPool.
type MemberSpec struct {
	ID      string
	Name    string
	Address string
	Port    int
	Weight  int
	Backup  bool
	Enabled bool
	// MaxConnections caps the member's requests in progress (haproxy's
	// server maxconn); 0 is no cap.
	MaxConnections int
}

// PoolSpec describes a pool for NewPool.
type PoolSpec struct {
	Name      string
	Algorithm string // ROUND_ROBIN (default), LEAST_CONNECTIONS or SOURCE_IP
	Members   []MemberSpec
	// Persistence is "", SOURCE_IP, HTTP_COOKIE or APP_COOKIE (with
	// CookieName, the application's cookie).
	Persistence, CookieName string
	// ProxyVersion 1 or 2 sends a PROXY protocol header to members (pool
	// protocol PROXY or PROXYV2); 0 sends none.
	ProxyVersion byte
	// TLS, if set, re-encrypts to members with this client config (its
	// ServerName is set per connection to the client's SNI). TLSKey
	// identifies its content, so member connections are shared by every
	// snapshot with the same settings.
	TLS    *tls.Config
	TLSKey string
	// HTTP2 speaks HTTP/2 to members: offered by ALPN over TLS (the TLS
	// config's NextProtos), with prior knowledge (h2c) without TLS.
	HTTP2 bool
}

// Pool selects members by its algorithm. Selection allocates nothing:
// ROUND_ROBIN walks a smooth weighted schedule computed once (one atomic
// add); LEAST_CONNECTIONS and SOURCE_IP scan the members that take traffic.
type Pool struct {
	Name      string
	algorithm string
	members   []*Member
	schedule  []int32    // ROUND_ROBIN: indices into members, in smooth-WRR order
	backups   []int32    // ROUND_ROBIN: the same for backup members
	primary   []weighted // members taking traffic
	backup    []weighted // used only when no primary takes traffic
	next      atomic.Uint64

	retries                 prometheus.Counter
	proxyVersion            byte
	tls                     *tls.Config
	tlsKey                  string
	http2                   bool
	persistence, cookieName string
	table                   *stickTable        // SOURCE_IP and APP_COOKIE
	byAddr, byCookie        map[string]*Member // for persistence lookups
}

// NewPool builds a pool. Members with weight 0 or admin_state_up false take
// no traffic; backup members serve only when no primary can. Member states
// come from states (nil: fresh ones); mx may be nil.
func NewPool(spec PoolSpec, states *States, mx *metrics.Metrics) *Pool {
	name := spec.Name
	p := &Pool{Name: name, algorithm: spec.Algorithm, persistence: spec.Persistence, cookieName: spec.CookieName, proxyVersion: spec.ProxyVersion, tls: spec.TLS, tlsKey: spec.TLSKey, http2: spec.HTTP2,
		byAddr: map[string]*Member{}, byCookie: map[string]*Member{}}
	if mx == nil {
		mx = discard
	}
	p.retries = mx.Retries.WithLabelValues(name)
	if p.persistence == PersistSourceIP || p.persistence == PersistAppCookie {
		p.table = states.table(name)
	}
	var primary, backup []weighted
	for _, s := range spec.Members {
		addr := net.JoinHostPort(s.Address, strconv.Itoa(s.Port))
		label := s.Name
		if label == "" {
			label = addr
		}
		m := &Member{Name: label, Addr: addr, pool: name, state: states.get(name, addr), hash: mix64(fnv64(addr)),
			cookie: memberCookie(s.ID, addr), serving: s.Enabled && s.Weight > 0, maxConns: s.MaxConnections}
		p.byAddr[addr], p.byCookie[m.cookie] = m, m
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
	p.primary, p.backup = primary, backup
	if p.algorithm == "" || p.algorithm == RoundRobin {
		p.schedule = smoothSchedule(primary)
		p.backups = smoothSchedule(backup)
	}
	return p
}

// Next returns the member for a request from client (its IP address), or
// nil when none can take traffic. Members marked DOWN are skipped; backup
// members serve only when no primary is up.
func (p *Pool) Next(client string) *Member {
	if m := p.pick(p.primary, p.schedule, client); m != nil {
		return m
	}
	return p.pick(p.backup, p.backups, client)
}

func (p *Pool) pick(ms []weighted, sched []int32, client string) *Member {
	if len(ms) == 0 {
		return nil
	}
	switch p.algorithm {
	case LeastConnections:
		return p.leastConnections(ms)
	case SourceIP:
		return p.sourceIP(ms, client)
	}
	// ROUND_ROBIN: the next schedule slot whose member is up.
	n := p.next.Add(1) - 1
	for i := range uint64(len(sched)) {
		m := p.members[sched[(n+i)%uint64(len(sched))]]
		if m.takesNew() {
			return m
		}
	}
	return nil
}

// NextExcluding returns a member other than those tried, or nil.
func (p *Pool) NextExcluding(client string, tried []*Member) *Member {
	for range len(p.members) + 1 {
		m := p.Next(client)
		if m == nil {
			return nil
		}
		if !slices.Contains(tried, m) {
			return m
		}
		if p.algorithm == SourceIP {
			return nil // deterministic: asking again gives the same member
		}
	}
	return nil
}

// available reports whether m may take a new request (a nil m may not).
func (m *Member) available() bool {
	return m != nil && m.serving && m.takesNew()
}

// takesNew reports whether the member is up and below its connection cap.
func (m *Member) takesNew() bool {
	return !m.state.Unavailable() && (m.maxConns <= 0 || m.state.active.Load() < int64(m.maxConns))
}

// TLSKey returns the pool's TLS identity ("" without re-encryption).
func (p *Pool) TLSKey() string { return p.tlsKey }

// TLS is the client config for re-encrypting to members; nil without.
func (p *Pool) TLS() *tls.Config { return p.tls }

// HTTP2 reports whether members are spoken to in HTTP/2.
func (p *Pool) HTTP2() bool { return p.http2 }

// ProxyVersion is the PROXY protocol version sent to members (0: none).
func (p *Pool) ProxyVersion() byte { return p.proxyVersion }

// Persistence is the pool's session persistence type ("" for none).
func (p *Pool) Persistence() string { return p.persistence }

// CountRetry counts a request sent to another member after a refusal.
func (p *Pool) CountRetry() { p.retries.Inc() }

// PoolName is the name of the member's pool, for the access log.
func (m *Member) PoolName() string { return m.pool }

// State is the member's state that outlives configuration generations.
func (m *Member) State() *MemberState { return m.state }

// Requests counts the member's requests of one status class
// (metrics.ClassIndex).
func (m *Member) Requests(class int) prometheus.Counter { return m.requests[class] }

// Errors counts the member's failures for a reason (connect, timeout, …).
func (m *Member) Errors(reason string) prometheus.Counter { return m.errors(reason) }

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

func bindMember(mx *metrics.Metrics, pool string, m *Member) {
	if mx == nil {
		mx = discard
	}
	for i, class := range metrics.StatusClasses {
		m.requests[i] = mx.MemberRequests.WithLabelValues(pool, m.Name, class)
	}
	vec := mx.MemberErrors
	m.errors = func(reason string) prometheus.Counter { return vec.WithLabelValues(pool, m.Name, reason) }
}

// discard collects metrics nobody reads, for callers that pass none.
var discard = metrics.New()
