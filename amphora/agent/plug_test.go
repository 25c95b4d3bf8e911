package agent_test

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/terminator-proxy/terminator/amphora/netplug"
	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

var (
	testNS   = tu.TestNS
	inNS     = tu.InNS
	handleAt = tu.HandleAt
)

func mustParseMAC(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }

// do sends one raw request as the controller, for bodies Octavia's
// client never sends.
func (a *amphora) do(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(a.controllerPEM, a.controllerPEM)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: tu.Pool(a.serverCA), ServerName: ampID, Certificates: []tls.Certificate{pair}}}}
	req, _ := http.NewRequest(method, "https://"+a.addr+path, strings.NewReader(body))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

const (
	vipMAC    = "fa:16:3e:77:00:01"
	memberMAC = "fa:16:3e:88:00:02"
)

// TestOctaviaPlugsTheAmphorasNetwork: Octavia's AmphoraAPIClient1_0 plugs
// a VIP port and a member port, whose NICs are veths the test made in a
// namespace standing in for the amphora's root (Nova attaches them
// there); the far ends sit in a "neutron" namespace with the gateway and
// a member.
func TestOctaviaPlugsTheAmphorasNetwork(t *testing.T) {
	_, hostNS := testNS(t, "tt-host-")
	_, neutronNS := testNS(t, "tt-neu-")
	ampNS := "tt-amp-" + hex.EncodeToString([]byte(t.Name()))[:6]
	t.Cleanup(func() { _ = netns.DeleteNamed(ampNS) })
	host, neutron := handleAt(t, hostNS), handleAt(t, neutronNS)
	for _, v := range []struct{ name, mac, peer, addr string }{
		{"ens3", vipMAC, "vipgw", "10.77.0.1/24"},
		{"ens4", memberMAC, "memsw", "10.88.0.50/24"},
	} {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: v.name, HardwareAddr: mustParseMAC(v.mac)},
			PeerName: v.peer, PeerNamespace: netlink.NsFd(int(neutronNS))}
		if err := host.LinkAdd(veth); err != nil {
			t.Fatalf("veth %s: %v", v.name, err)
		}
		peer, err := neutron.LinkByName(v.peer)
		if err != nil {
			t.Fatal(err)
		}
		addr, _ := netlink.ParseAddr(v.addr)
		if err := neutron.AddrAdd(peer, addr); err != nil {
			t.Fatal(err)
		}
		if err := neutron.LinkSetUp(peer); err != nil {
			t.Fatal(err)
		}
	}

	// The gateway listens for the VIP's gratuitous ARP.
	var arpc *arp.Client
	inNS(t, neutronNS, func() {
		ifi, ierr := net.InterfaceByName("vipgw")
		if ierr == nil {
			arpc, ierr = arp.Dial(ifi)
		}
		if ierr != nil {
			t.Errorf("ARP listener: %v", ierr)
		}
	})
	if arpc == nil {
		t.FailNow()
	}
	defer arpc.Close()
	garp := make(chan string, 1)
	go func() {
		_ = arpc.SetReadDeadline(time.Now().Add(20 * time.Second))
		for {
			pkt, _, err := arpc.Read()
			if err != nil {
				garp <- err.Error()
				return
			}
			if pkt.SenderIP == netip.MustParseAddr("10.77.0.10") && pkt.TargetIP == pkt.SenderIP && pkt.SenderHardwareAddr.String() == vipMAC {
				garp <- "seen"
				return
			}
		}
	}()

	// … and for the IPv6 VIP's unsolicited neighbour advertisement.
	gw6, _ := netlink.ParseAddr("fd00:77::1/64")
	gw6.Flags = unix.IFA_F_NODAD
	if vipgw, err := neutron.LinkByName("vipgw"); err != nil || neutron.AddrAdd(vipgw, gw6) != nil {
		t.Fatalf("fd00:77::1 on vipgw: %v", err)
	}
	var ndpc *ndp.Conn
	inNS(t, neutronNS, func() {
		ifi, ierr := net.InterfaceByName("vipgw")
		if ierr == nil {
			ndpc, _, ierr = ndp.Listen(ifi, ndp.Addr("fd00:77::1"))
		}
		if ierr != nil {
			t.Errorf("NDP listener: %v", ierr)
		}
	})
	if ndpc == nil {
		t.FailNow()
	}
	defer ndpc.Close()
	unsolicited := make(chan string, 1)
	go func() {
		_ = ndpc.SetReadDeadline(time.Now().Add(20 * time.Second))
		for {
			m, _, _, err := ndpc.ReadFrom()
			if err != nil {
				unsolicited <- err.Error()
				return
			}
			if na, ok := m.(*ndp.NeighborAdvertisement); ok && na.Override && !na.Solicited && na.TargetAddress == netip.MustParseAddr("fd00:77::10") {
				for _, o := range na.Options {
					if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Addr.String() == vipMAC {
						unsolicited <- "seen"
						return
					}
				}
			}
		}
	}()

	a := newAmphora(t)
	state := filepath.Join(a.dir, "plugged_interfaces")
	a.net = netplug.New(netplug.Options{Namespace: ampNS, Host: hostNS, StateFile: state})
	a.start(t)
	c := a.controller(t)
	c.must(t, "get_api_version")

	netInfo := map[string]any{
		"subnet_cidr": "10.77.0.0/24", "gateway": "10.77.0.1", "mac_address": vipMAC,
		"vrrp_ip": "10.77.0.5", "mtu": 1450,
		"host_routes": []any{map[string]any{"destination": "192.0.2.0/24", "nexthop": "10.77.0.254"}},
		"additional_vips": []any{map[string]any{"ip_address": "fd00:77::10", "subnet_cidr": "fd00:77::/64",
			"gateway": "fd00:77::1", "host_routes": []any{}}},
	}
	if r := c.must(t, "plug_vip", "10.77.0.10", netInfo).(map[string]any); r["status"] != 202.0 {
		t.Fatalf("plug_vip: %v", r)
	}
	if got := <-garp; got != "seen" {
		t.Errorf("no gratuitous ARP for the VIP from %s: %s", vipMAC, got)
	}
	if got := <-unsolicited; got != "seen" {
		t.Errorf("no unsolicited neighbour advertisement for fd00:77::10 from %s: %s", vipMAC, got)
	}
	if _, err := c.call(t, "plug_vip", "10.77.0.10", netInfo); err == nil || !strings.HasPrefix(err.Error(), "Conflict") {
		t.Errorf("plugging the VIP twice: %v, want Octavia's Conflict (409)", err)
	}
	port := map[string]any{"mac_address": memberMAC, "mtu": 1500,
		"fixed_ips": []any{map[string]any{"ip_address": "10.88.0.5", "subnet_cidr": "10.88.0.0/24",
			"host_routes": []any{map[string]any{"destination": "203.0.113.0/24", "nexthop": "10.88.0.1"}}}}}
	c.must(t, "plug_network", port)
	if _, err := c.call(t, "plug_network", map[string]any{"mac_address": "fa:16:3e:00:00:99"}); err == nil || !strings.HasPrefix(err.Error(), "InvalidRequest") {
		t.Errorf("a port without fixed_ips: %v, want InvalidRequest (no DHCP client)", err)
	}
	// A MAC no NIC has yet: 404 "No suitable network interface found",
	// which Octavia's client retries (Nova may still be hot-plugging)
	// until its retries run out.
	if _, err := c.call(t, "plug_network", map[string]any{"mac_address": "fa:16:3e:00:00:99",
		"fixed_ips": []any{map[string]any{"ip_address": "10.99.0.5", "subnet_cidr": "10.99.0.0/24"}}}); err == nil || !strings.HasPrefix(err.Error(), "TimeOutException") {
		t.Errorf("a MAC no NIC has: %v, want the client to retry and time out", err)
	}
	if code, body := a.do(t, "POST", "/1.0/plug/network", `{"mac_address":"fa:16:3e:00:00:99","fixed_ips":[{"ip_address":"10.99.0.5","subnet_cidr":"10.99.0.0/24"}]}`); code != 404 || body["details"] != "No suitable network interface found" {
		t.Errorf("a MAC no NIC has: %d %v", code, body)
	}
	for ip, want := range map[string]string{"10.77.0.10": "eth1", "fd00:77::10": "eth1", "10.88.0.5": "eth2"} {
		if r := c.must(t, "get_interface", ip).(map[string]any); r["interface"] != want {
			t.Errorf("get_interface %s: %v, want %s", ip, r, want)
		}
	}
	if _, err := c.call(t, "get_interface", "10.99.0.1"); err == nil || !strings.HasPrefix(err.Error(), "NotFound") {
		t.Errorf("get_interface of an address nobody has: %v", err)
	}

	// Bodies Octavia's client would not send: 400 with the agent's words.
	for _, tc := range []struct{ path, body, want string }{
		{"/1.0/plug/vip/10.77.0.11", `{"subnet_cidr":"10.77.0.0/24","mac_address":"` + vipMAC + `"}`, "Invalid subnet information"},
		{"/1.0/plug/vip/10.77.0.11", `[1,2]`, "Invalid subnet information"},
		{"/1.0/plug/vip/not-an-ip", `{"subnet_cidr":"10.77.0.0/24","gateway":null,"mac_address":"fa:16:3e:00:00:98"}`, "Invalid VIP"},
		{"/1.0/plug/vip/10.66.0.1", `{"subnet_cidr":"10.77.0.0/24","gateway":null,"mac_address":"fa:16:3e:00:00:98"}`, "Invalid VIP"},
		{"/1.0/plug/network", `{"fixed_ips":[]}`, "Invalid port information"},
		{"/1.0/plug/network", `{"mac_address":"fa:16:3e:00:00:98","fixed_ips":[{"ip_address":"300.1.1.1","subnet_cidr":"10.0.0.0/8"}]}`, "Invalid network port"},
	} {
		code, body := a.do(t, "POST", tc.path, tc.body)
		text, _ := json.Marshal(body)
		if code != http.StatusBadRequest || !strings.Contains(string(text), tc.want) {
			t.Errorf("POST %s %s: %d %s, want 400 %q", tc.path, tc.body, code, text, tc.want)
		}
	}

	amp, err := netns.GetFromName(ampNS)
	if err != nil {
		t.Fatalf("the amphora namespace %s was not made: %v", ampNS, err)
	}
	defer amp.Close()
	checkPlugged(t, handleAt(t, amp))

	// Traffic: Octavia's rendered HTTP load balancer on the VIP, served by
	// the data plane inside the amphora namespace; the member and its
	// health check are reached over the member network, the client sits
	// on the VIP network.
	msrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("member")) })}
	defer msrv.Close()
	for _, addr := range []string{"10.88.0.50:9090", "10.88.0.50:9091"} { // Octavia's sample pool has two members
		var member net.Listener
		inNS(t, neutronNS, func() { member, err = net.Listen("tcp", addr) })
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = msrv.Serve(member) }()
	}
	const lb = "sample_loadbalancer_id_1"
	cfg := render(t, map[string]any{"vip": "10.77.0.10", "members": []string{"10.88.0.50:9090", "10.88.0.50:9091"},
		"listeners": []map[string]any{{"id": "http", "proto": "HTTP", "port": 8080, "monitor": true}}})
	if code, body := a.do(t, "PUT", "/1.0/loadbalancer/"+ampID+"/"+lb+"/haproxy", cfg); code != 202 {
		t.Fatalf("upload_config: %d %v", code, body)
	}
	c.must(t, "reload_listener", lb)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
			inNS(t, neutronNS, func() { conn, err = (&net.Dialer{}).DialContext(ctx, network, addr) })
			return conn, err
		}}}
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := hc.Get("http://10.77.0.10:8080/")
		if err != nil {
			body = err.Error()
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if body = fmt.Sprintf("%d %s", resp.StatusCode, b); body == "200 member" {
			break
		}
	}
	if body != "200 member" {
		t.Fatalf("client → VIP → member across the amphora namespace: %s", body)
	}

	// PUT /1.0/interface/<vip>/rules: only the listed tuples reach the VIP.
	reaches := func() bool {
		resp, err := hc.Get("http://10.77.0.10:8080/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	hc.Timeout = time.Second
	for _, tc := range []struct {
		rules string
		open  bool
	}{
		{`[{"protocol":"TCP","cidr":"10.77.0.0/24","port":8080},{"protocol":"VRRP","cidr":null,"port":112}]`, true},
		{`[{"protocol":"TCP","cidr":"10.77.0.99/32","port":8080}]`, false}, // the client is 10.77.0.1
		{`[{"protocol":"TCP","cidr":null,"port":8081}]`, false},
		{`[{"protocol":"UDP","cidr":null,"port":8080}]`, false},
		{`[{"protocol":"TCP","cidr":null,"port":8080}]`, true},
	} {
		if code, body := a.do(t, "PUT", "/1.0/interface/10.77.0.10/rules", tc.rules); code != 200 || body["message"] != "OK" {
			t.Fatalf("rules %s: %d %v", tc.rules, code, body)
		}
		if got := reaches(); got != tc.open {
			t.Errorf("rules %s: the client reaches the VIP: %v, want %v", tc.rules, got, tc.open)
		}
	}
	hc.Timeout = 5 * time.Second
	for _, tc := range []struct{ path, body, want string }{
		{"/1.0/interface/10.77.0.10/rules", `{"protocol":"TCP"}`, "not a JSON array"},
		{"/1.0/interface/10.77.0.10/rules", `[{"protocol":"ICMP","cidr":null,"port":1}]`, `rules[0]: protocol \"ICMP\" is not TCP`},
		{"/1.0/interface/10.77.0.10/rules", `[{"protocol":"TCP","cidr":null,"port":1},{"protocol":"TCP","cidr":null,"port":70000}]`, "rules[1]: port 70000 is outside"},
		{"/1.0/interface/10.77.0.10/rules", `[{"protocol":"TCP","cidr":"10.0.0.300/8","port":1}]`, "is not a CIDR"},
	} {
		code, body := a.do(t, "PUT", tc.path, tc.body)
		text, _ := json.Marshal(body)
		if code != http.StatusBadRequest || body["message"] != "Invalid rules information" || !strings.Contains(string(text), tc.want) {
			t.Errorf("PUT %s %s: %d %s, want 400 %q", tc.path, tc.body, code, text, tc.want)
		}
	}
	if !reaches() {
		t.Error("a refused rules body changed the rules that were loaded")
	}
	if code, body := a.do(t, "PUT", "/1.0/interface/10.99.0.1/rules", `[]`); code != 404 {
		t.Errorf("rules for an address no interface has: %d %v", code, body)
	}
	c.must(t, "_action", "stop", lb)

	// Reboot: the NICs come back in the root namespace, unconfigured;
	// Restore plugs them again from the state file before any call.
	ah := handleAt(t, amp)
	for _, name := range []string{"eth1", "eth2"} {
		l, err := ah.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := ah.LinkSetNsFd(l, int(hostNS)); err != nil {
			t.Fatal(err)
		}
	}
	amp.Close()
	if err := netns.DeleteNamed(ampNS); err != nil {
		t.Fatal(err)
	}
	if err := netplug.New(netplug.Options{Namespace: ampNS, Host: hostNS, StateFile: state}).Restore(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	amp2, err := netns.GetFromName(ampNS)
	if err != nil {
		t.Fatal(err)
	}
	defer amp2.Close()
	checkPlugged(t, handleAt(t, amp2))
	// The last rules loaded (one TCP tuple) are loaded again.
	nc, err := nftables.New(nftables.WithNetNSFd(int(amp2)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.CloseLasting()
	tbl := &nftables.Table{Name: "amphora_vip", Family: nftables.TableFamilyNetdev}
	rules, err := nc.GetRules(tbl, &nftables.Chain{Name: "amphora_vip_chain", Table: tbl})
	if err != nil || len(rules) != 4 { // non-IP frames, ICMP, ICMPv6, TCP 8080
		t.Errorf("VIP rules after a reboot: %d rules, %v", len(rules), err)
	}
}

// checkPlugged checks the namespace holds what Octavia's amphora would
// have after the plugs above.
func checkPlugged(t *testing.T, h *netlink.Handle) {
	t.Helper()
	eth1, err := h.LinkByName("eth1")
	if err != nil {
		t.Fatalf("eth1: %v", err)
	}
	if eth1.Attrs().HardwareAddr.String() != vipMAC || eth1.Attrs().MTU != 1450 {
		t.Errorf("eth1: mac %s mtu %d", eth1.Attrs().HardwareAddr, eth1.Attrs().MTU)
	}
	eth2, err := h.LinkByName("eth2")
	if err != nil || eth2.Attrs().HardwareAddr.String() != memberMAC {
		t.Fatalf("eth2: %v %v", eth2, err)
	}
	addrs := map[string]bool{}
	for _, l := range []netlink.Link{eth1, eth2} {
		as, _ := h.AddrList(l, netlink.FAMILY_ALL)
		for _, a := range as {
			addrs[l.Attrs().Name+" "+a.IPNet.String()] = true
		}
	}
	for _, want := range []string{"eth1 10.77.0.5/24", "eth1 10.77.0.10/32", "eth1 fd00:77::10/128", "eth2 10.88.0.5/24"} {
		if !addrs[want] {
			t.Errorf("address %s missing; have %v", want, addrs)
		}
	}
	// The member subnet's host route sends 203.0.113.0/24 out of eth2 in
	// the main table, yet replies from the VIP leave by eth1 via the VIP's
	// gateway: rule "from 10.77.0.10 lookup 1".
	rs, err := h.RouteGetWithOptions(net.ParseIP("203.0.113.9"), &netlink.RouteGetOptions{SrcAddr: net.ParseIP("10.77.0.10")})
	if err != nil || len(rs) != 1 || rs[0].LinkIndex != eth1.Attrs().Index || !rs[0].Gw.Equal(net.ParseIP("10.77.0.1")) {
		t.Errorf("route from the VIP to 203.0.113.9: %v %v", rs, err)
	}
	rs, err = h.RouteGet(net.ParseIP("203.0.113.9"))
	if err != nil || len(rs) != 1 || rs[0].LinkIndex != eth2.Attrs().Index {
		t.Errorf("host route 203.0.113.0/24 via the member network: %v %v", rs, err)
	}
	rs, err = h.RouteGet(net.ParseIP("192.0.2.7"))
	if err != nil || len(rs) != 1 || !rs[0].Gw.Equal(net.ParseIP("10.77.0.254")) {
		t.Errorf("VIP subnet host route 192.0.2.0/24: %v %v", rs, err)
	}
	table1, _ := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 1}, netlink.RT_FILTER_TABLE)
	if len(table1) < 2 {
		t.Errorf("table 1 has %v, want the VIP's default and subnet routes", table1)
	}
}
