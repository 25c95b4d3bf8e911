// Package udprelay serves UDP listeners: datagrams from a client address
// (a flow) go to one member over a connected socket of their own, and the
// member's answers go back to the client from the listener's address, as
// IPVS does for Octavia's UDP listeners on an amphora. Flows end after an
// idle timeout; a flow whose member goes DOWN, refuses (ICMP port
// unreachable) or leaves the pool is moved at its next datagram.
//
// A Relay owns its socket and one reader goroutine; each flow owns one
// goroutine that reads the member's answers. Spec is swapped whole by
// Update; member health comes from outside (Health), per-member flow counts
// and the persistence table live in the Relay and survive updates.
package udprelay

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/terminator-proxy/terminator/metrics"
)

// Health tells whether health checks hold a member DOWN.
type Health interface{ Down() bool }

// Member is one pool member.
type Member struct {
	ID     string
	Label  string // the metrics' member label (name or address)
	Addr   string // host:port
	Weight int    // 0 takes no new flows (DRAIN); existing ones stay
	Health Health // nil: never DOWN
}

// Algorithms, by Octavia's names.
const (
	RoundRobin       = "ROUND_ROBIN"
	LeastConnections = "LEAST_CONNECTIONS"
	SourceIP         = "SOURCE_IP"
)

// Spec is what a Relay serves. It must not change once given to a Relay.
type Spec struct {
	Listener  string // metrics label
	Pool      string // "" drops every datagram (no pool, or a disabled one)
	Algorithm string
	Members   []Member
	// PersistTimeout > 0 keeps a client (its address masked to
	// PersistV4Bits / PersistV6Bits) on its member for that long after its
	// last datagram: Octavia's SOURCE_IP persistence for UDP pools.
	PersistTimeout               time.Duration
	PersistV4Bits, PersistV6Bits int
	// MemberFlowLimit caps each member's flows (keepalived's uthreshold,
	// the listener's connection_limit); 0 means none.
	MemberFlowLimit int
	// Allowed, if not empty, are the only client prefixes served.
	Allowed []netip.Prefix
}

// Options configure a Relay.
type Options struct {
	// Dial opens the socket to a member; default d.DialContext. The
	// amphora dials from its network namespace.
	Dial    func(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error)
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	// IdleTimeout ends a flow that saw no datagram either way for so long
	// (default 60 s).
	IdleTimeout time.Duration
	// MaxFlows bounds the flows of the relay (default 16384; each holds a
	// socket, a goroutine and a 16 KiB receive buffer); datagrams that
	// would open more are dropped and counted.
	MaxFlows int
}

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

// refusedHold is how long a member that refused a flow takes no new ones.
const refusedHold = 5 * time.Second

// Relay serves one UDP socket.
type Relay struct {
	opts Options
	pc   net.PacketConn
	spec atomic.Pointer[compiled]

	mu      sync.Mutex // guards flows, members and sticky
	flows   map[netip.AddrPort]*flow
	members map[string]*memberState // by address; survive updates
	sticky  map[netip.Addr]stick
	closed  bool

	wg      sync.WaitGroup // the reader and every flow
	active  prometheus.Gauge
	total   prometheus.Counter
	in, out prometheus.Counter
	dropped prometheus.Counter
}

// memberState is what outlives a Spec for one member address.
type memberState struct {
	flows   atomic.Int64
	refused atomic.Int64 // unix nanoseconds until which it takes no new flow
	current int          // smooth weighted round robin; the reader's only
}

// stick is a persistence entry: it holds while flows use it and for the
// persistence timeout after the last one ended, as an IPVS template does.
type stick struct {
	addr    string
	flows   int
	expires time.Time
}

// New serves pc with spec until Close. It takes ownership of pc.
func New(pc net.PacketConn, spec *Spec, o Options) *Relay {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 60 * time.Second
	}
	if o.MaxFlows <= 0 {
		o.MaxFlows = 16384
	}
	if o.Dial == nil {
		o.Dial = func(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}
	}
	r := &Relay{opts: o, pc: pc, flows: map[netip.AddrPort]*flow{}, members: map[string]*memberState{}, sticky: map[netip.Addr]stick{}}
	mx := o.Metrics
	r.active = mx.ConnectionsActive.WithLabelValues(spec.Listener)
	r.total = mx.ConnectionsTotal.WithLabelValues(spec.Listener)
	r.in = mx.BytesIn.WithLabelValues(spec.Listener)
	r.out = mx.BytesOut.WithLabelValues(spec.Listener)
	r.dropped = mx.HandshakeFailures.WithLabelValues(spec.Listener, "udp_dropped")
	r.Update(spec)
	r.wg.Add(1)
	go r.read()
	return r
}

// readFrom reads a datagram without allocating its source address when
// the socket is a UDPConn, as it always is outside tests.
func (r *Relay) readFrom(buf []byte) (int, netip.AddrPort, error) {
	if uc, ok := r.pc.(*net.UDPConn); ok {
		return uc.ReadFromUDPAddrPort(buf)
	}
	n, from, err := r.pc.ReadFrom(buf)
	if ua, ok := from.(*net.UDPAddr); ok {
		return n, ua.AddrPort(), err
	}
	return n, netip.AddrPort{}, err
}

// writeTo answers a client from the listener's socket.
func (r *Relay) writeTo(b []byte, client netip.AddrPort) (int, error) {
	if uc, ok := r.pc.(*net.UDPConn); ok {
		return uc.WriteToUDPAddrPort(b, client)
	}
	return r.pc.WriteTo(b, net.UDPAddrFromAddrPort(client))
}

// Addr is the bound address.
func (r *Relay) Addr() net.Addr { return r.pc.LocalAddr() }

// File returns a duplicate of the socket's descriptor, to hand to a new
// process.
func (r *Relay) File() (*os.File, error) {
	f, ok := r.pc.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, errors.New("udprelay: socket " + r.pc.LocalAddr().String() + " has no descriptor to hand over")
	}
	return f.File()
}

// Update switches to spec; flows whose member left it or went DOWN move at
// their next datagram.
func (r *Relay) Update(spec *Spec) {
	c := compile(spec)
	r.mu.Lock()
	live := map[string]bool{}
	for _, m := range c.Members {
		live[m.Addr] = true
		if r.members[m.Addr] == nil {
			r.members[m.Addr] = &memberState{}
		}
	}
	for addr, st := range r.members {
		if !live[addr] && st.flows.Load() == 0 {
			delete(r.members, addr)
		}
	}
	for _, m := range c.Members {
		c.state[m.Addr] = r.members[m.Addr]
	}
	r.mu.Unlock()
	r.spec.Store(c)
}

// Close stops serving: the socket closes (this process's descriptor of
// it), every flow ends, and Close returns when their goroutines have.
func (r *Relay) Close() error {
	r.mu.Lock()
	r.closed = true
	flows := make([]*flow, 0, len(r.flows))
	for _, f := range r.flows {
		flows = append(flows, f)
	}
	r.mu.Unlock()
	err := r.pc.Close()
	for _, f := range flows {
		f.conn.Close()
	}
	r.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// read is the listener's one reader: it admits flows and forwards every
// client datagram to its flow's member.
func (r *Relay) read() {
	defer r.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, client, err := r.readFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			r.opts.Logger.Warn("udp listener: read failed", "listener", r.spec.Load().Listener, "err", err)
			time.Sleep(10 * time.Millisecond) // never spin on a persistent error
			continue
		}
		client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
		r.in.Add(float64(n))
		f := r.flowFor(client)
		if f == nil {
			r.dropped.Inc()
			continue
		}
		f.touch()
		if _, err := f.conn.Write(buf[:n]); err != nil {
			// A member that refused (ICMP port unreachable) is held out
			// and the datagram goes to the flow's next member at once.
			f.fail(err)
			if f = r.flowFor(client); f != nil {
				if _, err := f.conn.Write(buf[:n]); err != nil {
					f.fail(err)
				}
			}
		}
	}
}
