package main

import (
	"crypto/sha1"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
)

const (
	vrrpVIP    = "10.77.0.100"
	vrrpMember = "10.77.0.50"
)

// vrrpAmp is one amphora of the pair: a terminator agent process whose
// NIC is a veth in a namespace of its own, on a bridge shared with the
// peer and the client.
type vrrpAmp struct {
	id, dir, ampNS, vrrpIP, mac string
	cmd                         *exec.Cmd
	ctl                         *tu.Controller
}

// TestActiveStandbyFailover: two terminator agents form an ACTIVE_STANDBY
// pair as Octavia's controller builds it: Octavia's client plugs each VIP
// port with its VRRP address, uploads the haproxy.cfg the JinjaTemplater
// renders and the keepalived configuration the KeepalivedJinjaTemplater
// renders for MASTER and BACKUP, and starts VRRP. The real keepalived
// runs in each amphora namespace; the MASTER holds the VIP and serves
// HTTP and TLS. Then the MASTER's agent is killed (SIGKILL) under load from
// a client namespace: its keepalived's check script fails, the BACKUP
// takes the VIP and serves. The failover time and the failed requests are
// logged; requests must succeed again within the bound VRRP allows.
func TestActiveStandbyFailover(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/keepalived"); err != nil {
		t.Fatalf("keepalived (make deps installs it): %v", err)
	}
	_, swNS := tu.TestNS(t, "tt-sw-")
	_, cliNS := tu.TestNS(t, "tt-cli-")
	sw, cli := tu.HandleAt(t, swNS), tu.HandleAt(t, cliNS)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	check(t, sw.LinkAdd(br))
	check(t, sw.LinkSetUp(br))
	veth := func(swSide, peer, mac string, ns netns.NsHandle) {
		hw, _ := net.ParseMAC(mac)
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: swSide, MasterIndex: br.Index}, PeerName: peer, PeerHardwareAddr: hw}
		check(t, sw.LinkAdd(v))
		check(t, sw.LinkSetUp(v))
		p, err := sw.LinkByName(peer)
		check(t, err)
		check(t, sw.LinkSetNsFd(p, int(ns)))
	}
	veth("sw-cli", "cli0", "fa:16:3e:77:00:50", cliNS)
	c0, err := cli.LinkByName("cli0")
	check(t, err)
	for _, ip := range append([]string{vrrpMember}, persistClients...) {
		a, _ := netlink.ParseAddr(ip + "/24")
		check(t, cli.AddrAdd(c0, a))
	}
	check(t, cli.LinkSetUp(c0))
	lo, _ := cli.LinkByName("lo")
	check(t, cli.LinkSetUp(lo))

	// The members (the sample pool has two), on the VIP subnet in the
	// client's namespace.
	for _, port := range []string{"8080", "8081"} {
		var ln net.Listener
		tu.InNS(t, cliNS, func() { ln, err = net.Listen("tcp", vrrpMember+":"+port) })
		check(t, err)
		member := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "member "+port) })}
		go member.Serve(ln)
		defer member.Close()
	}

	serverCA, clientCA, tenant := tu.CA(t, "server CA"), tu.CA(t, "client CA"), tu.CA(t, "tenant CA")
	leaf, key := tu.Leaf(t, tenant, pki.ECDSAP256, "site.example")
	bundle := string(append(pki.CertPEM(leaf), tu.KeyPEM(t, key)...))
	sha := fmt.Sprintf("%x", sha1.Sum(pki.CertPEM(leaf))) // the controller names bundles so
	amps := []*vrrpAmp{
		{id: "a1a1a1a1-0000-4000-8000-000000000001", vrrpIP: "10.77.0.11", mac: "fa:16:3e:77:00:11"},
		{id: "b2b2b2b2-0000-4000-8000-000000000002", vrrpIP: "10.77.0.12", mac: "fa:16:3e:77:00:12"},
	}
	for i, amp := range amps {
		nicName, nicNS := tu.TestNS(t, "tt-nic-")
		veth(fmt.Sprintf("sw-amp%d", i), fmt.Sprintf("amp%d-ens3", i), amp.mac, nicNS)
		amp.ampNS = fmt.Sprintf("tt-amp%d-%d", i, os.Getpid())
		t.Cleanup(func() { _ = netns.DeleteNamed(amp.ampNS) })
		startVRRPAgent(t, amp, nicName, serverCA, clientCA)
		defer amp.kill(t)
	}

	// The controller's calls, in the order of its ACTIVE_STANDBY flow.
	cfg, err := exec.Command("../../scripts/octavia-peer", "render", mustJSON(map[string]any{
		"vip": vrrpVIP, "members": []string{vrrpMember + ":8080", vrrpMember + ":8081"}, "base_cert_dir": "/unused",
		"amphorae": []map[string]any{{"id": amps[0].id, "vrrp_ip": amps[0].vrrpIP}, {"id": amps[1].id, "vrrp_ip": amps[1].vrrpIP}},
		"listeners": []map[string]any{
			{"id": "web", "proto": "HTTP", "monitor": false, "topology": "ACTIVE_STANDBY", "persistence_type": "SOURCE_IP"},
			{"id": "tls", "proto": "TERMINATED_HTTPS", "tls": true, "monitor": false, "topology": "ACTIVE_STANDBY"}},
	})).Output()
	check(t, err)
	for i, amp := range amps {
		certDir := filepath.Join(amp.dir, "octavia", "certs")
		c := amp.ctl
		c.Must(t, "plug_vip", vrrpVIP, map[string]any{"subnet_cidr": "10.77.0.0/24", "gateway": "10.77.0.1",
			"mac_address": amp.mac, "vrrp_ip": amp.vrrpIP, "mtu": 1500, "host_routes": []any{}})
		c.Must(t, "upload_cert_pem", "sample_loadbalancer_id_1", sha+".pem", bundle)
		c.Must(t, "upload_cert_pem", "sample_loadbalancer_id_1", "tls.pem", filepath.Join(certDir, "sample_loadbalancer_id_1", sha+".pem")+"\n")
		ampCfg := strings.ReplaceAll(string(cfg), "/unused", certDir)
		c.Must(t, "upload_config", "sample_loadbalancer_id_1", ampCfg)
		c.Must(t, "reload_listener", "sample_loadbalancer_id_1")
		intf, _ := c.Must(t, "get_interface", amp.vrrpIP).(map[string]any)
		role, prio, peer := "MASTER", 100, amps[1].vrrpIP
		if i == 1 {
			role, prio, peer = "BACKUP", 90, amps[0].vrrpIP
		}
		kcfg, err := exec.Command("../../scripts/octavia-peer", "render-vrrp", mustJSON(map[string]any{
			"base_path": filepath.Join(amp.dir, "octavia"), "role": role, "priority": prio, "vrrp_ip": amp.vrrpIP,
			"peer_vrrp_ip": peer, "interface": intf["interface"], "vip": vrrpVIP, "vip_cidr": "10.77.0.0/24",
			"gateway": "10.77.0.1", "advert_int": 1, "check_interval": 2, "fail": 2, "rise": 2,
		})).Output()
		check(t, err)
		c.Must(t, "upload_vrrp_config", string(kcfg))
		c.Must(t, "start_vrrp")
	}

	holder := func() int { // which amphora holds the VIP, -1 for none
		for i, amp := range amps {
			ns, err := netns.GetFromName(amp.ampNS)
			if err != nil {
				continue
			}
			h, err := netlink.NewHandleAt(ns)
			ns.Close()
			if err != nil {
				continue
			}
			addrs, _ := h.AddrList(nil, netlink.FAMILY_V4)
			h.Close()
			for _, a := range addrs {
				if a.IP.String() == vrrpVIP {
					return i
				}
			}
		}
		return -1
	}
	// nopreempt: whichever amphora first becomes MASTER keeps the VIP.
	var active int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if active = holder(); active >= 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no amphora took the VIP")
		}
	}
	standby := 1 - active

	dial := tu.DialIn(cliNS)
	httpClient := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
	tlsClient := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: tu.Pool(tenant), ServerName: "site.example"}}}
	get := func(c *http.Client, url string) error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "member ") {
			return fmt.Errorf("%d %q", resp.StatusCode, b)
		}
		return nil
	}
	// SOURCE_IP persistence: each client address keeps its member, on
	// the active amphora and, through the shared table, on the standby.
	memberOf := func(from string) string {
		c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: tu.DialIn(cliNS, net.ParseIP(from)), DisableKeepAlives: true}}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			resp, err := c.Get("http://" + vrrpVIP + "/")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return string(b)
			}
			if time.Now().After(deadline) {
				t.Fatalf("client %s: %v", from, err)
			}
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		e1, e2 := get(httpClient, "http://"+vrrpVIP+"/"), get(tlsClient, "https://"+vrrpVIP+"/")
		if e1 == nil && e2 == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pair does not serve through the VIP: %v / %v", e1, e2)
		}
	}

	before := map[string]string{}
	spread := map[string]bool{}
	for _, ip := range persistClients {
		before[ip] = memberOf(ip)
		spread[before[ip]] = true
		if again := memberOf(ip); again != before[ip] {
			t.Fatalf("client %s moved from %s to %s on the active amphora", ip, before[ip], again)
		}
	}
	if len(spread) < 2 {
		t.Fatalf("%d clients all went to %v: the check below would prove nothing", len(persistClients), spread)
	}

	// Load: HTTP and TLS requests, each on a new connection, every 20 ms.
	var ok, failed atomic.Int64
	var lastFail atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, target := range []struct {
		c   *http.Client
		url string
	}{{httpClient, "http://" + vrrpVIP + "/"}, {tlsClient, "https://" + vrrpVIP + "/"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				if err := get(target.c, target.url); err != nil {
					failed.Add(1)
					lastFail.Store(time.Now().UnixNano())
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	time.Sleep(2 * time.Second)
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed before the failover", failed.Load())
	}
	killed := time.Now()
	amps[active].kill(t) // the active amphora's terminator dies
	var moved time.Duration
	for deadline := time.Now().Add(30 * time.Second); holder() != standby; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the standby never took the VIP (holder %d)", holder())
		}
	}
	moved = time.Since(killed)
	time.Sleep(5 * time.Second)
	close(stop)
	wg.Wait()
	var recovered time.Duration
	if lf := lastFail.Load(); lf != 0 {
		recovered = time.Unix(0, lf).Sub(killed)
	}
	t.Logf("failover: VIP on the standby %v after the kill; last failed request %v after it; %d requests ok, %d failed",
		moved.Round(10*time.Millisecond), recovered.Round(10*time.Millisecond), ok.Load(), failed.Load())
	// keepalived: 2 failed checks 2 s apart, then the standby's master-down
	// timer (3 adverts of 1 s plus skew); the slack covers a loaded machine.
	if recovered > 20*time.Second {
		t.Fatalf("requests still failed %v after the kill", recovered)
	}
	if err := get(httpClient, "http://"+vrrpVIP+"/"); err != nil {
		t.Fatalf("after the failover: %v", err)
	}
	if err := get(tlsClient, "https://"+vrrpVIP+"/"); err != nil {
		t.Fatalf("TLS after the failover: %v", err)
	}
	// In the reverse order: a standby that balanced them afresh would not
	// give each the member it had.
	for i := len(persistClients) - 1; i >= 0; i-- {
		ip := persistClients[i]
		if after := memberOf(ip); after != before[ip] {
			t.Errorf("client %s had %s before the failover and %s after: the stick table was not shared", ip, before[ip], after)
		}
	}
}

// persistClients are client addresses whose members persist (SOURCE_IP).
var persistClients = []string{"10.77.0.60", "10.77.0.61", "10.77.0.62", "10.77.0.63", "10.77.0.64", "10.77.0.65", "10.77.0.66", "10.77.0.67"}

func startVRRPAgent(t *testing.T, amp *vrrpAmp, nicNS string, serverCA, clientCA *pki.CA) {
	t.Helper()
	amp.dir = t.TempDir()
	sc, sk, _ := serverCA.Issue(pki.Request{CommonName: amp.id, DNSNames: []string{amp.id}, Usage: pki.ServerAuth})
	tu.WriteFile(t, amp.dir, "server.pem", append(pki.CertPEM(sc), tu.KeyPEM(t, sk)...))
	tu.WriteFile(t, amp.dir, "client_ca.pem", pki.CertPEM(clientCA.Cert))
	tu.WriteFile(t, amp.dir, "server_ca.pem", pki.CertPEM(serverCA.Cert))
	cc, ck, _ := clientCA.Issue(pki.Request{CommonName: "controller", Usage: pki.ClientAuth})
	clientPEM := tu.WriteFile(t, amp.dir, "client.pem", append(pki.CertPEM(cc), tu.KeyPEM(t, ck)...))
	addr := freePort(t)
	_, port, _ := net.SplitHostPort(addr)
	conf, err := exec.Command("../../scripts/octavia-peer", "agent-conf", amp.id, "127.0.0.1:9", "hb-key",
		"haproxy_amphora.bind_host=127.0.0.1", "haproxy_amphora.bind_port="+port,
		"haproxy_amphora.base_path="+filepath.Join(amp.dir, "octavia"), "haproxy_amphora.base_cert_dir="+filepath.Join(amp.dir, "octavia", "certs"),
		"amphora_agent.agent_server_cert="+filepath.Join(amp.dir, "server.pem"), "amphora_agent.agent_server_ca="+filepath.Join(amp.dir, "client_ca.pem"),
		"topology=ACTIVE_STANDBY").Output()
	check(t, err)
	confPath := tu.WriteFile(t, amp.dir, "amphora-agent.conf", conf)
	amp.cmd = exec.Command(binary, "agent", "--config", confPath, "--namespace", amp.ampNS, "--nic-namespace", nicNS,
		"--plugged-interfaces", filepath.Join(amp.dir, "plugged.json"), "--drain-timeout", "2s")
	amp.cmd.Stderr = os.Stderr
	check(t, amp.cmd.Start())
	amp.ctl = tu.NewController(t, addr, amp.id, clientPEM, filepath.Join(amp.dir, "server_ca.pem"))
	amp.ctl.Must(t, "get_api_version")
}

// kill ends the amphora's agent with SIGKILL, as a crash would, and once
// the test is done its keepalived too (a child the dead agent left).
func (a *vrrpAmp) kill(t *testing.T) {
	if a.cmd.ProcessState == nil {
		_ = a.cmd.Process.Kill()
		_ = a.cmd.Wait()
	}
	t.Cleanup(func() {
		data, err := os.ReadFile(filepath.Join(a.dir, "octavia", "vrrp", "octavia-keepalived.pid"))
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && perr == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
