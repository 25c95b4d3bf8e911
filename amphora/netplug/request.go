// Package netplug is the amphora's network side: it moves the NICs Nova
// attaches into the amphora's network namespace (Octavia's
// "amphora-haproxy") and configures them as Octavia's amphora agent
// does for POST /1.0/plug/vip/<vip> and POST /1.0/plug/network —
// addresses, MTU, default and host routes, and the source-based policy
// routing (table 1) that makes replies from a VIP leave by the VIP's
// interface. What was plugged is recorded so Restore can replay it when
// the amphora reboots, before the controller calls again.
//
// It speaks netlink through vishvananda/netlink; it never runs ip(8).
package netplug

import (
	"fmt"
	"net/netip"
)

// HostRoute is one of a subnet's host_routes.
type HostRoute struct {
	Destination string `json:"destination"`
	Nexthop     string `json:"nexthop"`
}

// VIPNet is the body of POST /1.0/plug/vip/<vip> (Octavia's net_info).
type VIPNet struct {
	SubnetCIDR     string          `json:"subnet_cidr"`
	Gateway        *string         `json:"gateway"`
	MACAddress     string          `json:"mac_address"`
	MTU            *int            `json:"mtu"`
	VRRPIP         *string         `json:"vrrp_ip"`
	HostRoutes     []HostRoute     `json:"host_routes"`
	AdditionalVIPs []AdditionalVIP `json:"additional_vips"`
}

// AdditionalVIP is one more VIP on the VIP port, on its own subnet.
type AdditionalVIP struct {
	IPAddress  string      `json:"ip_address"`
	SubnetCIDR string      `json:"subnet_cidr"`
	Gateway    *string     `json:"gateway"`
	HostRoutes []HostRoute `json:"host_routes"`
}

// Port is the body of POST /1.0/plug/network.
type Port struct {
	MACAddress string    `json:"mac_address"`
	FixedIPs   []FixedIP `json:"fixed_ips"`
	MTU        *int      `json:"mtu"`
	// VIPNetInfo, set when a subnet is added to the VIP port, re-plugs
	// the VIP interface with these settings.
	VIPNetInfo *VIPNetInfo `json:"vip_net_info"`
}

// FixedIP is one address of a member-network port.
type FixedIP struct {
	IPAddress  string      `json:"ip_address"`
	SubnetCIDR string      `json:"subnet_cidr"`
	Gateway    *string     `json:"gateway"`
	HostRoutes []HostRoute `json:"host_routes"`
}

// VIPNetInfo is VIPNet with the VIP inside, as plug/network carries it.
type VIPNetInfo struct {
	VIP string `json:"vip"`
	VIPNet
}

// Error is a refusal with the status and body Octavia's agent gives.
type Error struct {
	Status  int
	Message string // "message"; empty when Octavia sends only details
	Details string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Details
	}
	if e.Details == "" {
		return e.Message
	}
	return e.Message + ": " + e.Details
}

// vip is one VIP address with its subnet.
type vip struct {
	addr       netip.Addr
	subnet     netip.Prefix
	gateway    netip.Addr // invalid when the subnet has none
	hostRoutes []route
}

type route struct {
	dst     netip.Prefix
	nexthop netip.Addr
}

func parseAddr(what, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s %q is not an IP address", what, s)
	}
	return a.Unmap(), nil
}

func parseSubnet(what, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s %q is not a CIDR", what, s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%s %q has host bits set", what, s)
	}
	return p, nil
}

func parseGateway(what string, s *string, subnet netip.Prefix) (netip.Addr, error) {
	if s == nil || *s == "" {
		return netip.Addr{}, nil
	}
	g, err := parseAddr(what, *s)
	if err != nil {
		return g, err
	}
	if g.Is4() != subnet.Addr().Is4() {
		return g, fmt.Errorf("%s %s is not of subnet %s's IP version", what, g, subnet)
	}
	return g, nil
}

func parseHostRoutes(what string, hrs []HostRoute) ([]route, error) {
	out := make([]route, 0, len(hrs))
	for i, hr := range hrs {
		dst, err := parseSubnet(fmt.Sprintf("%s[%d].destination", what, i), hr.Destination)
		if err != nil {
			return nil, err
		}
		nh, err := parseAddr(fmt.Sprintf("%s[%d].nexthop", what, i), hr.Nexthop)
		if err != nil {
			return nil, err
		}
		if nh.Is4() != dst.Addr().Is4() {
			return nil, fmt.Errorf("%s[%d]: nexthop %s and destination %s differ in IP version", what, i, nh, dst)
		}
		out = append(out, route{dst: dst, nexthop: nh})
	}
	return out, nil
}

// vips parses the primary VIP and the additional ones of n.
func (n *VIPNet) vips(primary string) ([]vip, error) {
	all := append([]AdditionalVIP{{IPAddress: primary, SubnetCIDR: n.SubnetCIDR, Gateway: n.Gateway, HostRoutes: n.HostRoutes}}, n.AdditionalVIPs...)
	out := make([]vip, 0, len(all))
	for i, a := range all {
		what := "vip"
		if i > 0 {
			what = fmt.Sprintf("additional_vips[%d]", i-1)
		}
		addr, err := parseAddr(what+".ip_address", a.IPAddress)
		if err != nil {
			return nil, err
		}
		subnet, err := parseSubnet(what+".subnet_cidr", a.SubnetCIDR)
		if err != nil {
			return nil, err
		}
		if !subnet.Contains(addr) {
			return nil, fmt.Errorf("%s %s is not in subnet_cidr %s", what, addr, subnet)
		}
		gw, err := parseGateway(what+".gateway", a.Gateway, subnet)
		if err != nil {
			return nil, err
		}
		hrs, err := parseHostRoutes(what+".host_routes", a.HostRoutes)
		if err != nil {
			return nil, err
		}
		out = append(out, vip{addr: addr, subnet: subnet, gateway: gw, hostRoutes: hrs})
	}
	return out, nil
}
