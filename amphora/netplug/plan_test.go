package netplug

import (
	"net/netip"
	"strings"
	"testing"
)

func str(s string) *string { return &s }

// TestVIPPlanByTopology: outside ACTIVE_STANDBY the VIP is configured with
// its policy routing; in ACTIVE_STANDBY keepalived owns the VIP, so only
// the VRRP address and main-table routes are planned.
func TestVIPPlanByTopology(t *testing.T) {
	n := &VIPNet{SubnetCIDR: "10.0.0.0/24", Gateway: str("10.0.0.1"), MACAddress: "fa:16:3e:00:00:01", VRRPIP: str("10.0.0.5")}
	single, err := vipPlan("10.0.0.10", n, nil, TopologySingle)
	if err != nil {
		t.Fatal(err)
	}
	if got := single.addrs; len(got) != 2 || got[0] != netip.MustParsePrefix("10.0.0.5/24") || got[1] != netip.MustParsePrefix("10.0.0.10/32") {
		t.Errorf("SINGLE addresses %v", got)
	}
	if len(single.rules) != 1 || single.rules[0] != netip.MustParsePrefix("10.0.0.10/32") {
		t.Errorf("SINGLE rules %v", single.rules)
	}
	as, err := vipPlan("10.0.0.10", n, nil, TopologyActiveStandby)
	if err != nil {
		t.Fatal(err)
	}
	if len(as.addrs) != 1 || len(as.rules) != 0 {
		t.Errorf("ACTIVE_STANDBY plans the VIP keepalived owns: %v %v", as.addrs, as.rules)
	}
	for _, r := range as.routes {
		if r.table != 0 {
			t.Errorf("ACTIVE_STANDBY route in table %d: %+v", r.table, r)
		}
	}
}

// TestBadPlugsNameTheField: each refusal says which field is wrong.
func TestBadPlugsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		vip  string
		n    VIPNet
		want string
	}{
		{"10.0.0.10", VIPNet{SubnetCIDR: "10.0.0.1/24"}, "vip.subnet_cidr \"10.0.0.1/24\" has host bits set"},
		{"10.1.0.10", VIPNet{SubnetCIDR: "10.0.0.0/24"}, "vip 10.1.0.10 is not in subnet_cidr 10.0.0.0/24"},
		{"10.0.0.10", VIPNet{SubnetCIDR: "10.0.0.0/24", Gateway: str("fd00::1")}, "vip.gateway fd00::1 is not of subnet"},
		{"10.0.0.10", VIPNet{SubnetCIDR: "10.0.0.0/24", VRRPIP: str("10.9.0.1")}, "Invalid VRRP Address: vrrp_ip 10.9.0.1 is not in"},
		{"10.0.0.10", VIPNet{SubnetCIDR: "10.0.0.0/24", MTU: new(int)}, "mtu 0 is outside"},
		{"10.0.0.10", VIPNet{SubnetCIDR: "10.0.0.0/24", HostRoutes: []HostRoute{{Destination: "192.0.2.0/24", Nexthop: "fd00::1"}}}, "vip.host_routes[0]: nexthop fd00::1 and destination"},
		{"10.0.0.10", VIPNet{SubnetCIDR: "10.0.0.0/24", AdditionalVIPs: []AdditionalVIP{{IPAddress: "x", SubnetCIDR: "fd00::/64"}}}, "additional_vips[0].ip_address \"x\""},
	} {
		_, err := vipPlan(tc.vip, &tc.n, nil, TopologySingle)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.n, err, tc.want)
		}
	}
	if _, err := portPlan(&Port{MACAddress: "fa:16:3e:00:00:01", FixedIPs: []FixedIP{{IPAddress: "10.0.0.5", SubnetCIDR: "10.1.0.0/24"}}}); err == nil || !strings.Contains(err.Error(), "fixed_ips[0].ip_address 10.0.0.5 is not in subnet_cidr 10.1.0.0/24") {
		t.Errorf("port outside its subnet: %v", err)
	}
}
