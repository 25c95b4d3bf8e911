package netplug

import (
	"fmt"
	"net/netip"
)

// Topologies, as [controller_worker] loadbalancer_topology names them.
const (
	TopologySingle        = "SINGLE"
	TopologyActiveStandby = "ACTIVE_STANDBY"
)

// vipTable is the routing table for traffic sourced from a VIP: its
// default route and subnet route send replies out of the VIP interface
// whatever the main table says (Octavia's amphora uses table 1 too).
const vipTable = 1

// plan is what one interface gets: everything is added idempotently, so
// applying a plan twice changes nothing.
type plan struct {
	vips   []netip.Addr // a VIP interface's VIPs, primary first
	mtu    int
	addrs  []netip.Prefix
	routes []planRoute
	rules  []netip.Prefix // "from <prefix> lookup vipTable"
}

type planRoute struct {
	dst    netip.Prefix
	gw     netip.Addr // invalid: a link (scope link) route
	src    netip.Addr // preferred source, or invalid
	table  int        // 0: main
	onlink bool
}

func defaultRoute(a netip.Addr) netip.Prefix {
	if a.Is4() {
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
}

func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

func mtuOf(m *int) (int, error) {
	if m == nil {
		return 0, nil
	}
	if *m < 68 || *m > 65535 {
		return 0, fmt.Errorf("mtu %d is outside 68..65535", *m)
	}
	return *m, nil
}

// vipPlan is Octavia's VIP interface: the amphora's own VRRP address on
// the VIP subnet; each VIP as a /32 (/128) with its subnet reachable on
// the link; default and host routes in the main table and, outside
// ACTIVE_STANDBY, in vipTable with a rule sending VIP-sourced traffic
// there. In ACTIVE_STANDBY keepalived adds and removes the VIPs and
// their routing, so the plan leaves them to it.
func vipPlan(primary string, n *VIPNet, fixed []FixedIP, topology string) (*plan, error) {
	vips, err := n.vips(primary)
	if err != nil {
		return nil, &Error{Status: 400, Message: "Invalid VIP: " + err.Error()}
	}
	p := &plan{}
	if p.mtu, err = mtuOf(n.MTU); err != nil {
		return nil, &Error{Status: 400, Message: "Invalid VIP: " + err.Error()}
	}
	if n.VRRPIP != nil && *n.VRRPIP != "" {
		a, err := parseAddr("vrrp_ip", *n.VRRPIP)
		if err == nil && !vips[0].subnet.Contains(a) {
			err = fmt.Errorf("vrrp_ip %s is not in subnet_cidr %s", a, vips[0].subnet)
		}
		if err != nil {
			return nil, &Error{Status: 400, Message: "Invalid VRRP Address: " + err.Error()}
		}
		p.addrs = append(p.addrs, netip.PrefixFrom(a, vips[0].subnet.Bits()))
	}
	managed := topology != TopologyActiveStandby
	for _, v := range vips {
		p.vips = append(p.vips, v.addr)
		if v.gateway.IsValid() {
			p.routes = append(p.routes, planRoute{dst: defaultRoute(v.addr), gw: v.gateway, onlink: true})
			if managed {
				p.routes = append(p.routes, planRoute{dst: defaultRoute(v.addr), gw: v.gateway, onlink: true, table: vipTable})
			}
		}
		p.routes = append(p.routes, planRoute{dst: v.subnet})
		if managed {
			p.addrs = append(p.addrs, hostPrefix(v.addr))
			p.routes = append(p.routes, planRoute{dst: v.subnet, src: v.addr, table: vipTable})
			p.rules = append(p.rules, hostPrefix(v.addr))
		}
		for _, hr := range v.hostRoutes {
			p.routes = append(p.routes,
				planRoute{dst: hr.dst, gw: hr.nexthop},
				planRoute{dst: hr.dst, gw: hr.nexthop, table: vipTable})
		}
	}
	fp, err := fixedPlan(fixed, true, managed)
	if err != nil {
		return nil, &Error{Status: 400, Message: "Invalid network port", Details: err.Error()}
	}
	p.addrs = append(p.addrs, fp.addrs...)
	p.routes = append(p.routes, fp.routes...)
	return p, nil
}

// planPort plans what plug/network configures: the VIP interface again
// when the port carries vip_net_info (its MTU defaulting to the port's),
// else a member-network interface.
func planPort(port *Port, topology string) (*plan, error) {
	if port.VIPNetInfo == nil {
		return portPlan(port)
	}
	vn := port.VIPNetInfo.VIPNet
	if vn.MTU == nil {
		vn.MTU = port.MTU
	}
	return vipPlan(port.VIPNetInfo.VIP, &vn, port.FixedIPs, topology)
}

// portPlan is a member-network interface: its fixed IPs on their
// subnets and the subnets' host routes. Without fixed IPs Octavia's
// amphora runs DHCP; terminator does not, and says so.
func portPlan(port *Port) (*plan, error) {
	if len(port.FixedIPs) == 0 {
		return nil, &Error{Status: 400, Message: "Invalid network port", Details: "fixed_ips is empty: terminator agent configures static addresses only and runs no DHCP client"}
	}
	p, err := fixedPlan(port.FixedIPs, false, false)
	if err == nil {
		p.mtu, err = mtuOf(port.MTU)
	}
	if err != nil {
		return nil, &Error{Status: 400, Message: "Invalid network port", Details: err.Error()}
	}
	return p, nil
}

// fixedPlan adds a port's fixed IPs; gateways become default routes
// only on the VIP interface, as in Octavia.
func fixedPlan(fixed []FixedIP, vipIface, managed bool) (*plan, error) {
	p := &plan{}
	for i, f := range fixed {
		what := fmt.Sprintf("fixed_ips[%d]", i)
		a, err := parseAddr(what+".ip_address", f.IPAddress)
		if err != nil {
			return nil, err
		}
		subnet, err := parseSubnet(what+".subnet_cidr", f.SubnetCIDR)
		if err != nil {
			return nil, err
		}
		if !subnet.Contains(a) {
			return nil, fmt.Errorf("%s.ip_address %s is not in subnet_cidr %s", what, a, subnet)
		}
		p.addrs = append(p.addrs, netip.PrefixFrom(a, subnet.Bits()))
		if vipIface {
			gw, err := parseGateway(what+".gateway", f.Gateway, subnet)
			if err != nil {
				return nil, err
			}
			if gw.IsValid() {
				p.routes = append(p.routes, planRoute{dst: defaultRoute(a), gw: gw, onlink: true})
				if managed {
					p.routes = append(p.routes, planRoute{dst: defaultRoute(a), gw: gw, onlink: true, table: vipTable})
				}
			}
		}
		hrs, err := parseHostRoutes(what+".host_routes", f.HostRoutes)
		if err != nil {
			return nil, err
		}
		for _, hr := range hrs {
			p.routes = append(p.routes, planRoute{dst: hr.dst, gw: hr.nexthop})
		}
	}
	return p, nil
}
