package agentconf_test

import (
	"crypto/tls"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/terminator-proxy/terminator/amphora/agentconf"
)

// TestReadsWhatOctaviaRenders: the amphora-agent.conf that Octavia's own
// AgentJinjaTemplater renders for an amphora is read with every option
// terminator agent uses.
func TestReadsWhatOctaviaRenders(t *testing.T) {
	out, err := exec.Command("../../scripts/octavia-peer", "agent-conf", "3d5b8f3a-amp", "127.0.0.1:5555,[::1]:5556", "k3y").Output()
	if err != nil {
		t.Fatalf("rendering with Octavia's templater (make deps installs python3-octavia): %v", err)
	}
	c, err := agentconf.Parse(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := agentconf.Config{
		AmphoraID: "3d5b8f3a-amp", ServerCert: "/etc/octavia/certs/server.pem", ServerCA: "/etc/octavia/certs/client_ca.pem",
		RequestReadTimeout: 180 * time.Second, TLSVersion: tls.VersionTLS12,
		BasePath: "/var/lib/octavia", BaseCertDir: "/var/lib/octavia/certs", BindHost: "::", BindPort: 9443, Topology: "SINGLE",
	}
	got := *c
	got.Heartbeat = agentconf.Heartbeat{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read %+v\nwant %+v", got, want)
	}
	hb := c.Heartbeat
	if strings.Join(hb.Destinations, " ") != "127.0.0.1:5555 [::1]:5556" || hb.Interval != 10*time.Second || hb.Key != "k3y" {
		t.Fatalf("heartbeat settings %+v", hb)
	}
}

// TestBadOptionsAreNamed: every bad or missing option is reported at once,
// named section.option; a malformed file says where.
func TestBadOptionsAreNamed(t *testing.T) {
	_, err := agentconf.Parse([]byte(`
[amphora_agent]
agent_tls_protocol = TLSv1
agent_request_read_timeout = soon
[haproxy_amphora]
bind_host = localhost
bind_port = 99999
[health_manager]
controller_ip_port_list = 127.0.0.1:5555, nohost, 127.0.0.1:0
heartbeat_interval = 0
`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"amphora_agent.amphora_id: is required",
		`amphora_agent.agent_tls_protocol: "TLSv1" is not served`,
		`amphora_agent.agent_request_read_timeout: must be a whole number of seconds, not "soon"`,
		`haproxy_amphora.bind_host: "localhost" is not an IP address`,
		`haproxy_amphora.bind_port: must be a port number 1-65535, not "99999"`,
		`health_manager.controller_ip_port_list: "nohost"`,
		`health_manager.controller_ip_port_list: "127.0.0.1:0": bad port`,
		`health_manager.heartbeat_interval: must be a whole number of seconds ≥ 1, not "0"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := agentconf.Parse([]byte("[amphora_agent\namphora_id = x\n")); err == nil || !strings.Contains(err.Error(), "amphora agent config") {
		t.Fatalf("malformed INI: %v", err)
	}
}

// TestReadsTheTopology: an ACTIVE_STANDBY amphora's file, as Octavia
// renders it, says so; a topology Octavia does not have is refused.
func TestReadsTheTopology(t *testing.T) {
	out, err := exec.Command("../../scripts/octavia-peer", "agent-conf", "amp", "", "k", "topology=ACTIVE_STANDBY").Output()
	if err != nil {
		t.Fatalf("rendering with Octavia's templater: %v", err)
	}
	c, err := agentconf.Parse(out)
	if err != nil || c.Topology != "ACTIVE_STANDBY" {
		t.Fatalf("topology %+v %v\n%s", c, err, out)
	}
	bad := strings.Replace(string(out), "loadbalancer_topology = ACTIVE_STANDBY", "loadbalancer_topology = ACTIVE_ACTIVE", 1)
	if _, err := agentconf.Parse([]byte(bad)); err == nil || !strings.Contains(err.Error(), `controller_worker.loadbalancer_topology: "ACTIVE_ACTIVE" is neither SINGLE nor ACTIVE_STANDBY`) {
		t.Fatalf("ACTIVE_ACTIVE: %v", err)
	}
}
