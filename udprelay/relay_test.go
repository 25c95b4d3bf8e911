package udprelay

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/metrics"
)

// echo is a DNS-like member (testutil.UDPEcho).
type echo struct {
	name string
	pc   net.PacketConn
}

func startEcho(t *testing.T, name string) *echo { return &echo{name: name, pc: tu.UDPEcho(t, name)} }

func (e *echo) member(weight int) Member {
	return Member{ID: e.name, Label: e.name, Addr: e.pc.LocalAddr().String(), Weight: weight}
}

// down is a health state the test flips.
type down struct{ atomic.Bool }

func (d *down) Down() bool { return d.Load() }

func startRelay(t *testing.T, spec *Spec, o Options) (*Relay, *metrics.Metrics) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.Metrics = metrics.New()
	r := New(pc, spec, o)
	t.Cleanup(func() { r.Close() })
	return r, o.Metrics
}

// client is one client socket (one flow), optionally from another
// loopback address.
type client struct {
	t    *testing.T
	conn *net.UDPConn
}

func newClient(t *testing.T, r *Relay, from string) *client {
	t.Helper()
	laddr := &net.UDPAddr{IP: net.ParseIP(from)}
	conn, err := net.DialUDP("udp", laddr, r.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn}
}

// ask sends q and returns the answering member's name, resending a lost
// datagram; "" when nothing answered.
func (c *client) ask(q string) string { return tu.UDPAsk(c.t, c.conn, q, 5) }

// askOnce is ask without resending, for what must not be answered.
func (c *client) askOnce(q string) string { return tu.UDPAsk(c.t, c.conn, q, 1) }

func TestRoundRobinKeepsEachFlowOnItsMember(t *testing.T) {
	tu.NoLeaks(t)
	a, b := startEcho(t, "a"), startEcho(t, "b")
	r, mx := startRelay(t, &Spec{Listener: "dns", Pool: "p", Algorithm: RoundRobin, Members: []Member{a.member(1), b.member(1)}}, Options{})
	count := map[string]int{}
	for range 10 {
		c := newClient(t, r, "127.0.0.1")
		first := c.ask("q0")
		for i := range 5 {
			if got := c.ask("q" + string(rune('1'+i))); got != first {
				t.Fatalf("a flow moved from %s to %s", first, got)
			}
		}
		count[first]++
	}
	if count["a"] != 5 || count["b"] != 5 {
		t.Fatalf("10 flows spread %v, want 5/5", count)
	}
	if v := promtest.ToFloat64(mx.ConnectionsTotal.WithLabelValues("dns")); v != 10 {
		t.Fatalf("flows counted: %v", v)
	}
	// The last answer may reach the client before its bytes are counted.
	for deadline := time.Now().Add(time.Second); ; time.Sleep(10 * time.Millisecond) {
		in, out := promtest.ToFloat64(mx.BytesIn.WithLabelValues("dns")), promtest.ToFloat64(mx.BytesOut.WithLabelValues("dns"))
		if in == 120 && out == 240 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bytes in %v out %v, want 120 and 240", in, out)
		}
	}
}

func TestWeightsAndLeastConnections(t *testing.T) {
	a, b := startEcho(t, "a"), startEcho(t, "b")
	r, _ := startRelay(t, &Spec{Listener: "l", Pool: "p", Algorithm: RoundRobin, Members: []Member{a.member(3), b.member(1)}}, Options{})
	count := map[string]int{}
	for range 8 {
		count[newClient(t, r, "127.0.0.1").ask("x")]++
	}
	if count["a"] != 6 || count["b"] != 2 {
		t.Fatalf("weights 3:1 spread 8 flows %v", count)
	}
	// LEAST_CONNECTIONS: b has no flow yet once a holds some; then they even out.
	r2, _ := startRelay(t, &Spec{Listener: "l2", Pool: "p2", Algorithm: LeastConnections, Members: []Member{a.member(1), b.member(1)}}, Options{})
	count = map[string]int{}
	for range 6 {
		count[newClient(t, r2, "127.0.0.1").ask("x")]++
	}
	if count["a"] != 3 || count["b"] != 3 {
		t.Fatalf("least connections spread 6 flows %v", count)
	}
}

func TestSourceIPAndPersistence(t *testing.T) {
	a, b, c := startEcho(t, "a"), startEcho(t, "b"), startEcho(t, "c")
	members := []Member{a.member(1), b.member(1), c.member(1)}
	r, _ := startRelay(t, &Spec{Listener: "l", Pool: "p", Algorithm: SourceIP, Members: members}, Options{})
	for _, from := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		first := newClient(t, r, from).ask("x")
		for range 4 { // new flows from the same address
			if got := newClient(t, r, from).ask("x"); got != first {
				t.Fatalf("SOURCE_IP sent %s to %s, then %s", from, first, got)
			}
		}
	}
	// Round robin with persistence by /24: every address of 127.0.0.0/24
	// sticks to the first one's member while the entry lives, and it
	// outlives the flows by the persistence timeout.
	r2, _ := startRelay(t, &Spec{Listener: "l2", Pool: "p2", Algorithm: RoundRobin, Members: members,
		PersistTimeout: time.Second, PersistV4Bits: 24, PersistV6Bits: 128}, Options{IdleTimeout: 200 * time.Millisecond})
	first := newClient(t, r2, "127.0.0.1").ask("x")
	for _, from := range []string{"127.0.0.2", "127.0.0.9", "127.0.0.1"} {
		if got := newClient(t, r2, from).ask("x"); got != first {
			t.Fatalf("persistence: %s went to %s, not %s", from, got, first)
		}
	}
	time.Sleep(500 * time.Millisecond) // the flows are idle and gone; the entry holds
	if got := newClient(t, r2, "127.0.0.5").ask("x"); got != first {
		t.Fatalf("persistence ended with the flows: %s, not %s", got, first)
	}
	time.Sleep(1500 * time.Millisecond) // now the entry has expired too
	seen := map[string]bool{}
	for range 3 {
		seen[newClient(t, r2, "127.0.0.1").ask("x")] = true
		time.Sleep(1300 * time.Millisecond) // let each entry expire
	}
	if len(seen) < 2 {
		t.Fatalf("after the timeout, new flows still all went to %v", seen)
	}
}

// TestMemberKilledTrafficMoves: a member that stops listening refuses
// (ICMP port unreachable); its flows move at once and a DOWN member takes
// none; the client loses at most the datagram in flight, which it resends.
func TestMemberKilledTrafficMoves(t *testing.T) {
	tu.NoLeaks(t)
	a, b := startEcho(t, "a"), startEcho(t, "b")
	var bDown down
	mb := b.member(1)
	mb.Health = &bDown
	r, mx := startRelay(t, &Spec{Listener: "l", Pool: "p", Algorithm: RoundRobin, Members: []Member{a.member(1), mb}}, Options{})
	clients := []*client{newClient(t, r, "127.0.0.1"), newClient(t, r, "127.0.0.1"), newClient(t, r, "127.0.0.1"), newClient(t, r, "127.0.0.1")}
	on := map[*client]string{}
	for _, c := range clients {
		on[c] = c.ask("hello")
	}
	a.pc.Close() // member a is killed
	for _, c := range clients {
		for i := range 3 {
			if got := c.ask("after" + string(rune('0'+i))); got != "b" {
				t.Fatalf("a client of %s got %q after a was killed", on[c], got)
			}
		}
	}
	if v := promtest.ToFloat64(mx.MemberErrors.WithLabelValues("p", "a", "refused")); v < 1 {
		t.Fatal("the refusal was not counted")
	}
	// Health checks mark b DOWN: nothing is left to take the flows.
	bDown.Store(true)
	if got := clients[0].askOnce("nobody"); got != "" {
		t.Fatalf("a DOWN member answered (%s)", got)
	}
	bDown.Store(false)
	if got := clients[0].ask("back"); got != "b" {
		t.Fatalf("b back UP: %q", got)
	}
}

func TestLimitsAndIdleFlows(t *testing.T) {
	tu.NoLeaks(t)
	a := startEcho(t, "a")
	r, mx := startRelay(t, &Spec{Listener: "l", Pool: "p", Algorithm: RoundRobin, Members: []Member{a.member(1)},
		Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/31")}}, Options{MaxFlows: 2, IdleTimeout: time.Second})
	one, two := newClient(t, r, "127.0.0.1"), newClient(t, r, "127.0.0.1")
	if one.ask("1") != "a" || two.ask("2") != "a" {
		t.Fatal("two flows within the limit")
	}
	if got := newClient(t, r, "127.0.0.1").askOnce("3"); got != "" {
		t.Fatal("a third flow was admitted over MaxFlows")
	}
	if got := newClient(t, r, "127.0.0.7").askOnce("x"); got != "" {
		t.Fatal("a client outside allowed_cidrs was served")
	}
	if v := promtest.ToFloat64(mx.HandshakeFailures.WithLabelValues("l", "udp_dropped")); v < 2 {
		t.Fatalf("dropped datagrams counted %v", v)
	}
	time.Sleep(1500 * time.Millisecond) // both flows idle out
	if v := promtest.ToFloat64(mx.ConnectionsActive.WithLabelValues("l")); v != 0 {
		t.Fatalf("%v flows still active after the idle timeout", v)
	}
	if got := newClient(t, r, "127.0.0.1").ask("4"); got != "a" {
		t.Fatal("no flow admitted once the idle ones ended")
	}
	// A per-member flow limit (uthreshold) holds new flows off a full member.
	r.Update(&Spec{Listener: "l", Pool: "p", Algorithm: RoundRobin, Members: []Member{a.member(1)}, MemberFlowLimit: 1})
	if got := newClient(t, r, "127.0.0.1").askOnce("5"); got != "" {
		t.Fatal("a member at its flow limit took another flow")
	}
	// No pool: everything is dropped.
	r.Update(&Spec{Listener: "l"})
	if got := one.askOnce("6"); got != "" {
		t.Fatal("served without a pool")
	}
}
