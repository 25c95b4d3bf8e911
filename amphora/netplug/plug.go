package netplug

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DefaultNamespace is the network namespace Octavia's amphora serves in.
const DefaultNamespace = "amphora-haproxy"

// vipInterface is the name the VIP NIC always gets in the namespace.
const vipInterface = "eth1"

// Options configure a Plugger.
type Options struct {
	// Namespace is the named network namespace (/run/netns/<name>)
	// interfaces are moved into; created when missing.
	Namespace string
	// Host is the namespace Nova's NICs appear in; zero is the calling
	// process's own.
	Host netns.NsHandle
	// StateFile records what was plugged, for Restore.
	StateFile string
	// Topology is SINGLE or ACTIVE_STANDBY.
	Topology string
}

// Plugger plugs interfaces. Its methods are safe for concurrent use and
// run one at a time.
type Plugger struct {
	o  Options
	mu sync.Mutex
}

// New returns a Plugger for o.
func New(o Options) *Plugger {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Topology == "" {
		o.Topology = TopologySingle
	}
	return &Plugger{o: o}
}

// handles opens netlink handles on the host and amphora namespaces,
// creating the latter (with lo up) if missing. The caller closes both.
func (p *Plugger) handles() (host, amp *netlink.Handle, err error) {
	ns, err := p.namespace()
	if err != nil {
		return nil, nil, err
	}
	defer ns.Close()
	if p.o.Host.IsOpen() {
		host, err = netlink.NewHandleAt(p.o.Host)
	} else {
		host, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("netlink on the host namespace: %w", err)
	}
	amp, err = netlink.NewHandleAt(ns)
	if err != nil {
		host.Close()
		return nil, nil, fmt.Errorf("netlink in namespace %s: %w", p.o.Namespace, err)
	}
	return host, amp, nil
}

// namespace opens the amphora namespace, creating it if missing.
func (p *Plugger) namespace() (netns.NsHandle, error) {
	if ns, err := netns.GetFromName(p.o.Namespace); err == nil {
		return ns, nil
	}
	// NewNamed switches the calling thread into the new namespace: do it
	// on a locked thread and switch back before unlocking.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return netns.None(), fmt.Errorf("current network namespace: %w", err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(p.o.Namespace)
	if serr := netns.Set(orig); serr != nil {
		// The thread is in the wrong namespace; never reuse it.
		panic(fmt.Sprintf("netplug: cannot return to the original namespace: %v", serr))
	}
	if err != nil {
		return netns.None(), fmt.Errorf("creating network namespace %s: %w", p.o.Namespace, err)
	}
	// A new namespace's loopback is down; listeners and members on
	// 127.0.0.1 need it, as Octavia's amphora brings it up (plug_lo).
	h, err := netlink.NewHandleAt(ns)
	if err == nil {
		var lo netlink.Link
		if lo, err = h.LinkByName("lo"); err == nil {
			err = h.LinkSetUp(lo)
		}
		h.Close()
	}
	if err != nil {
		ns.Close()
		return netns.None(), fmt.Errorf("bringing up lo in %s: %w", p.o.Namespace, err)
	}
	return ns, nil
}

func linkByMAC(h *netlink.Handle, mac string) (netlink.Link, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return nil, err
	}
	links, err := h.LinkList()
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		if strings.EqualFold(l.Attrs().HardwareAddr.String(), hw.String()) {
			return l, nil
		}
	}
	return nil, nil
}

// PlugVIP plugs the VIP NIC (found by n.MACAddress) as eth1 and
// configures vip and n's additional VIPs on it.
func (p *Plugger) PlugVIP(vipAddr string, n *VIPNet) (string, error) {
	pl, err := vipPlan(vipAddr, n, nil, p.o.Topology)
	if err != nil {
		return "", err
	}
	if _, err := net.ParseMAC(n.MACAddress); err != nil {
		return "", &Error{Status: 400, Message: "Invalid subnet information", Details: fmt.Sprintf("mac_address %q: %v", n.MACAddress, err)}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	name, err := p.plug(n.MACAddress, vipInterface, pl, true)
	if err != nil {
		return "", err
	}
	if err := p.record(entry{MAC: strings.ToLower(n.MACAddress), Interface: name, VIP: vipAddr, VIPNet: n}); err != nil {
		return "", err
	}
	addrs := make([]string, len(pl.vips))
	for i, v := range pl.vips {
		addrs[i] = v.StringExpanded()
	}
	// In ACTIVE_STANDBY keepalived holds and announces the VIPs.
	if p.o.Topology != TopologyActiveStandby {
		if err := p.announce(name, pl.vips); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("VIPs plugged on interface %s: %s", name, strings.Join(addrs, ", ")), nil
}

// PlugNetwork plugs a member-network NIC under the next free ethN, or
// updates it when it is already in the namespace. It reports the details
// Octavia's agent gives.
func (p *Plugger) PlugNetwork(port *Port) (string, error) {
	if _, err := net.ParseMAC(port.MACAddress); err != nil {
		return "", &Error{Status: 400, Message: "Invalid port information", Details: fmt.Sprintf("mac_address %q: %v", port.MACAddress, err)}
	}
	pl, err := planPort(port, p.o.Topology)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	name, err := p.plug(port.MACAddress, "", pl, false)
	existing := errors.Is(err, errExisting)
	if err != nil && !existing {
		return "", err
	}
	if err := p.record(entry{MAC: strings.ToLower(port.MACAddress), Interface: name, Port: port}); err != nil {
		return "", err
	}
	if existing {
		return "Updated existing interface " + name, nil
	}
	return "Plugged on interface " + name, nil
}

// errExisting marks a plug that found its NIC already in the namespace
// and updated it.
var errExisting = errors.New("interface already in the namespace")

// plug moves the NIC with mac into the namespace as name (the next free
// ethN when empty) and applies pl. A NIC already in the namespace is a
// 409 when refuseExisting, else it is updated and errExisting returned.
func (p *Plugger) plug(mac, name string, pl *plan, refuseExisting bool) (string, error) {
	host, amp, err := p.handles()
	if err != nil {
		return "", err
	}
	defer host.Close()
	defer amp.Close()
	if l, err := linkByMAC(amp, mac); err != nil {
		return "", fmt.Errorf("listing interfaces in %s: %w", p.o.Namespace, err)
	} else if l != nil {
		if refuseExisting {
			return "", &Error{Status: 409, Message: "Interface already exists"}
		}
		if err := apply(amp, l, pl); err != nil {
			return "", err
		}
		return l.Attrs().Name, errExisting
	}
	l, err := linkByMAC(host, mac)
	if err != nil {
		return "", fmt.Errorf("listing interfaces: %w", err)
	}
	if l == nil {
		return "", &Error{Status: 404, Details: "No suitable network interface found"}
	}
	if name == "" {
		if name, err = nextName(amp); err != nil {
			return "", err
		}
	}
	if err := host.LinkSetDown(l); err != nil {
		return "", fmt.Errorf("setting %s down: %w", l.Attrs().Name, err)
	}
	ns, err := netns.GetFromName(p.o.Namespace)
	if err != nil {
		return "", fmt.Errorf("opening namespace %s: %w", p.o.Namespace, err)
	}
	err = host.LinkSetNsFd(l, int(ns))
	ns.Close()
	if err != nil {
		return "", fmt.Errorf("moving %s (%s) into %s: %w", l.Attrs().Name, mac, p.o.Namespace, err)
	}
	if l, err = linkByMAC(amp, mac); err != nil || l == nil {
		return "", fmt.Errorf("%s vanished moving into %s: %v", mac, p.o.Namespace, err)
	}
	if err := amp.LinkSetName(l, name); err != nil {
		return "", fmt.Errorf("renaming %s to %s: %w", l.Attrs().Name, name, err)
	}
	if l, err = amp.LinkByName(name); err != nil {
		return "", err
	}
	return name, apply(amp, l, pl)
}

// nextName is the first free ethN from eth<number of links>, as
// Octavia counts (lo and the VIP's eth1 included).
func nextName(h *netlink.Handle) (string, error) {
	links, err := h.LinkList()
	if err != nil {
		return "", err
	}
	used := map[string]bool{}
	for _, l := range links {
		used[l.Attrs().Name] = true
	}
	for i := len(links); ; i++ {
		if n := fmt.Sprintf("eth%d", i); !used[n] {
			return n, nil
		}
	}
}

// apply configures l as pl says: MTU, up, addresses, routes, rules.
func apply(h *netlink.Handle, l netlink.Link, pl *plan) error {
	name := l.Attrs().Name
	if pl.mtu > 0 {
		if err := h.LinkSetMTU(l, pl.mtu); err != nil {
			return fmt.Errorf("%s: mtu %d: %w", name, pl.mtu, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("%s: up: %w", name, err)
	}
	for _, a := range pl.addrs {
		addr := &netlink.Addr{IPNet: ipNet(a)}
		if a.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD // a VIP answers at once, as after failover
		}
		if err := h.AddrReplace(l, addr); err != nil {
			return fmt.Errorf("%s: address %s: %w", name, a, err)
		}
	}
	for _, r := range pl.routes {
		nr := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(r.dst), Table: r.table}
		if r.gw.IsValid() {
			nr.Gw = r.gw.AsSlice()
			if r.onlink {
				nr.Flags = int(netlink.FLAG_ONLINK)
			}
		} else {
			nr.Scope = netlink.SCOPE_LINK
		}
		if r.src.IsValid() {
			nr.Src = r.src.AsSlice()
		}
		if err := h.RouteReplace(nr); err != nil {
			return fmt.Errorf("%s: route %s via %v table %d: %w", name, r.dst, r.gw, r.table, err)
		}
	}
	for _, src := range pl.rules {
		if err := ensureRule(h, src); err != nil {
			return fmt.Errorf("%s: rule from %s lookup %d: %w", name, src, vipTable, err)
		}
	}
	return nil
}

func ensureRule(h *netlink.Handle, src netip.Prefix) error {
	family := netlink.FAMILY_V4
	if src.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	rules, err := h.RuleList(family)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if r.Table == vipTable && r.Src != nil && r.Src.String() == ipNet(src).String() {
			return nil
		}
	}
	r := netlink.NewRule()
	r.Family = family
	r.Src = ipNet(src)
	r.Table = vipTable
	r.Priority = 100
	return h.RuleAdd(r)
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// InterfaceOf names the namespace's interface holding ip (GET
// /1.0/interface/<ip>).
func (p *Plugger) InterfaceOf(ip string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.interfaceOf(ip)
}

// interfaceOf is InterfaceOf with p.mu held.
func (p *Plugger) interfaceOf(ip string) (string, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "", &Error{Status: 400, Message: "Invalid IP address"}
	}
	host, amp, err := p.handles()
	if err != nil {
		return "", err
	}
	defer host.Close()
	defer amp.Close()
	addrs, err := amp.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return "", fmt.Errorf("listing addresses in %s: %w", p.o.Namespace, err)
	}
	for _, ad := range addrs {
		if x, ok := netip.AddrFromSlice(ad.IP); ok && x.Unmap() == a.Unmap() {
			l, err := amp.LinkByIndex(ad.LinkIndex)
			if err != nil {
				return "", err
			}
			return l.Attrs().Name, nil
		}
	}
	return "", &Error{Status: 404, Message: "Error interface not found for IP address"}
}
