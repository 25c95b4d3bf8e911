package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
)

// peer runs scripts/octavia-peer with args and returns its stdout lines.
func peer(t *testing.T, stdin io.Reader, args ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command("../../scripts/octavia-peer", args...)
	cmd.Stdin = stdin
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("octavia-peer (make deps installs python3-octavia): %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, bufio.NewScanner(out)
}

// TestAgentProcessWithOctavia runs the built binary as an amphora's agent
// from the amphora-agent.conf Octavia's templater renders, drives it with
// Octavia's own controller client, and reads its heartbeats with the
// health manager's own receiver: the listener the controller configured
// is reported, with the traffic it carried.
func TestAgentProcessWithOctavia(t *testing.T) {
	dir := t.TempDir()
	const amp = "7c0e4a7e-1111-4d2b-9c8e-3a5f6b7c8d9e"
	serverCA, clientCA := tu.CA(t, "server CA"), tu.CA(t, "client CA")
	sc, sk, _ := serverCA.Issue(pki.Request{CommonName: amp, DNSNames: []string{amp}, Usage: pki.ServerAuth})
	tu.WriteFile(t, dir, "server.pem", append(pki.CertPEM(sc), tu.KeyPEM(t, sk)...))
	tu.WriteFile(t, dir, "client_ca.pem", pki.CertPEM(clientCA.Cert))
	tu.WriteFile(t, dir, "server_ca.pem", pki.CertPEM(serverCA.Cert))
	cc, ck, _ := clientCA.Issue(pki.Request{CommonName: "controller", Usage: pki.ClientAuth})
	tu.WriteFile(t, dir, "client.pem", append(pki.CertPEM(cc), tu.KeyPEM(t, ck)...))

	_, hm := peer(t, nil, "heartbeat-recv", "hb-key", "40")
	if !hm.Scan() || !strings.HasPrefix(hm.Text(), "PORT ") {
		t.Fatalf("Octavia's receiver did not start: %q", hm.Text())
	}
	hmAddr := "127.0.0.1:" + strings.TrimPrefix(hm.Text(), "PORT ")
	agentAddr := freePort(t)
	_, port, _ := strings.Cut(agentAddr, ":")
	conf, err := exec.Command("../../scripts/octavia-peer", "agent-conf", amp, hmAddr, "hb-key",
		"haproxy_amphora.bind_host=127.0.0.1", "haproxy_amphora.bind_port="+port,
		"haproxy_amphora.base_path="+filepath.Join(dir, "octavia"), "haproxy_amphora.base_cert_dir="+filepath.Join(dir, "octavia", "certs"),
		"amphora_agent.agent_server_cert="+filepath.Join(dir, "server.pem"), "amphora_agent.agent_server_ca="+filepath.Join(dir, "client_ca.pem"),
		"health_manager.heartbeat_interval=1").Output()
	if err != nil {
		t.Fatalf("rendering the agent config: %v", err)
	}
	confPath := tu.WriteFile(t, dir, "amphora-agent.conf", conf)
	agentCmd := exec.Command(binary, "agent", "--config", confPath, "--drain-timeout", "2s", "--namespace", "")
	agentCmd.Stderr = os.Stderr
	if err := agentCmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { agentCmd.Process.Signal(os.Interrupt); agentCmd.Wait() }()

	var members []string
	for range 2 {
		b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "via terminator") }))
		defer b.Close()
		members = append(members, strings.TrimPrefix(b.URL, "http://"))
	}
	spec, _ := json.Marshal(map[string]any{"vip": "127.0.0.31", "members": members, "listeners": []map[string]any{{"id": "web", "proto": "HTTP", "monitor": false}}})
	cfg, err := exec.Command("../../scripts/octavia-peer", "render", string(spec)).Output()
	if err != nil {
		t.Fatal(err)
	}
	// A UDP listener on the same VIP, as the amphora driver sends it.
	dns1, dns2 := tu.UDPEcho(t, "dns"), tu.UDPEcho(t, "dns") // the sample pool has two members
	lvsSpec, _ := json.Marshal(map[string]any{"listener": map[string]any{"proto": "UDP", "monitor": false, "persistence": false},
		"port": 53, "vip": "127.0.0.31", "members": []string{dns1.LocalAddr().String(), dns2.LocalAddr().String()}})
	lvs, err := exec.Command("../../scripts/octavia-peer", "render-lvs", string(lvsSpec)).Output()
	if err != nil {
		t.Fatal(err)
	}
	calls := strings.NewReader(strings.Join([]string{
		`{"call": "get_api_version"}`,
		fmt.Sprintf(`{"call": "upload_config", "args": ["sample_loadbalancer_id_1", %q]}`, cfg),
		`{"call": "reload_listener", "args": ["sample_loadbalancer_id_1"]}`,
		fmt.Sprintf(`{"call": "upload_udp_config", "args": ["sample_listener_id_1", %q]}`, lvs),
		`{"call": "reload_listener", "args": ["sample_listener_id_1"]}`,
		`{"call": "get_all_listeners"}`,
	}, "\n") + "\n")
	_, ctl := peer(t, calls, "client", agentAddr, amp, filepath.Join(dir, "client.pem"), filepath.Join(dir, "server_ca.pem"))
	for i := 0; i < 6; i++ {
		if !ctl.Scan() {
			t.Fatalf("call %d: Octavia's client exited", i)
		}
		if !strings.HasPrefix(ctl.Text(), `{"ok": true`) {
			t.Fatalf("call %d: %s", i, ctl.Text())
		}
	}
	oneShot := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	for range 3 { // three connections
		resp, err := oneShot.Get("http://127.0.0.31:80/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "via terminator" {
			t.Fatalf("through the agent's listener: %q", b)
		}
		conn, err := net.Dial("udp", "127.0.0.31:53") // and three UDP flows
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if got := tu.UDPAsk(t, conn, "query", 5); got != "dns" {
			t.Fatalf("through the agent's UDP listener: %q", got)
		}
	}
	// The health manager hears about the listener and its traffic.
	deadline := time.Now().Add(20 * time.Second)
	var conns, flows int64
	for time.Now().Before(deadline) && hm.Scan() {
		var m struct {
			ID        string `json:"id"`
			Ver       int    `json:"ver"`
			Listeners map[string]struct {
				Status string           `json:"status"`
				Stats  map[string]int64 `json:"stats"`
			} `json:"listeners"`
			Pools map[string]struct {
				Status  string            `json:"status"`
				Members map[string]string `json:"members"`
			} `json:"pools"`
		}
		if json.Unmarshal(hm.Bytes(), &m) != nil || m.ID != amp || m.Ver != 3 {
			t.Fatalf("heartbeat: %s", hm.Text())
		}
		l, ok := m.Listeners["web"]
		u, uok := m.Listeners["sample_listener_id_1"]
		if !ok || !uok {
			continue // before the reloads
		}
		p := m.Pools["sample_pool_id_1:web"]
		if l.Status != "OPEN" || p.Status != "UP" || p.Members["sample_member_id_1"] != "no check" {
			t.Fatalf("heartbeat: %s", hm.Text())
		}
		// A UDP listener's pool is keyed by its id alone, as Octavia's
		// health daemon reports keepalived's.
		up := m.Pools["sample_pool_id_1"]
		if u.Status != "OPEN" || up.Status != "UP" || up.Members["sample_member_id_1"] != "no check" {
			t.Fatalf("heartbeat: %s", hm.Text())
		}
		conns += l.Stats["totconns"]
		if flows += u.Stats["totconns"]; conns >= 3 && flows >= 3 {
			break
		}
	}
	if conns < 3 || flows < 3 {
		t.Fatalf("the health manager never heard of the listeners' 3 connections and 3 flows (saw %d and %d)", conns, flows)
	}

	// PUT /1.0/config with a new health manager and key: heartbeats go
	// there at once, without a restart.
	_, hm2 := peer(t, nil, "heartbeat-recv", "new-key", "1")
	if !hm2.Scan() || !strings.HasPrefix(hm2.Text(), "PORT ") {
		t.Fatalf("second receiver: %q", hm2.Text())
	}
	hm2Addr := "127.0.0.1:" + strings.TrimPrefix(hm2.Text(), "PORT ")
	newConf := strings.Replace(strings.Replace(string(conf), hmAddr, hm2Addr, 1), "heartbeat_key = hb-key", "heartbeat_key = new-key", 1)
	req, _ := json.Marshal(map[string]any{"call": "update_agent_config", "args": []string{newConf}})
	_, ctl2 := peer(t, strings.NewReader(`{"call": "get_api_version"}`+"\n"+string(req)+"\n"),
		"client", agentAddr, amp, filepath.Join(dir, "client.pem"), filepath.Join(dir, "server_ca.pem"))
	for i := 0; i < 2; i++ {
		if !ctl2.Scan() || !strings.HasPrefix(ctl2.Text(), `{"ok": true`) {
			t.Fatalf("update_agent_config call %d: %s", i, ctl2.Text())
		}
	}
	if !hm2.Scan() || !strings.Contains(hm2.Text(), `"id": "`+amp+`"`) {
		t.Fatalf("the new health manager got %q", hm2.Text())
	}
	if saved, _ := os.ReadFile(confPath); !strings.Contains(string(saved), "new-key") {
		t.Fatal("the new agent configuration was not written")
	}
}
