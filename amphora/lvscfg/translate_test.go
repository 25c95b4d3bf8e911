package lvscfg

import (
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/terminator-proxy/terminator/config"
)

// render returns the keepalived configuration Octavia's own
// LvsJinjaTemplater renders for spec (scripts/octavia-peer render-lvs).
func render(t *testing.T, spec map[string]any) []byte {
	t.Helper()
	arg, _ := json.Marshal(spec)
	out, err := exec.Command("../../scripts/octavia-peer", "render-lvs", string(arg)).Output()
	if err != nil {
		t.Fatalf("Octavia's LvsJinjaTemplater (make deps installs python3-octavia): %v", err)
	}
	return out
}

func udp(kw map[string]any, extra map[string]any) map[string]any {
	l := map[string]any{"proto": "UDP", "monitor_proto": "UDP-CONNECT"}
	for k, v := range kw {
		l[k] = v
	}
	spec := map[string]any{"listener": l}
	for k, v := range extra {
		spec[k] = v
	}
	return spec
}

func translate(t *testing.T, data []byte) *config.Config {
	t.Helper()
	cfg, err := Translate("sample_listener_id_1", data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	valid := *cfg
	valid.ApplyDefaults()
	if _, err := valid.Validate(); err != nil && len(cfg.Listeners) > 0 {
		t.Fatalf("the translation is not a valid configuration: %v", err)
	}
	return cfg
}

// TestOctaviasSample: Octavia's own sample UDP listener (UDP-CONNECT
// monitor, SOURCE_IP persistence, a connection limit) becomes the same
// listener, pool, members and monitor in terminator's model.
func TestOctaviasSample(t *testing.T) {
	cfg := translate(t, render(t, udp(map[string]any{"persistence_type": "SOURCE_IP", "persistence_timeout": 33,
		"persistence_granularity": "255.255.0.0", "connection_limit": 98}, nil)))
	l, p := cfg.Listeners[0], cfg.Pools[0]
	if l.ID != "sample_listener_id_1" || l.Protocol != "UDP" || l.Bind != "10.0.0.2:80" || l.DefaultPoolID != "sample_pool_id_1" || *l.ConnectionLimit != 98 {
		t.Fatalf("listener %+v", l)
	}
	if p.Protocol != "UDP" || p.LBAlgorithm != "ROUND_ROBIN" || len(p.Members) != 2 {
		t.Fatalf("pool %+v", p)
	}
	if sp := p.SessionPersistence; sp.Type != "SOURCE_IP" || *sp.PersistenceTimeout != 33 || sp.PersistenceGranularity != "255.255.0.0" {
		t.Fatalf("persistence %+v", sp)
	}
	if hm := p.HealthMonitor; hm.Type != "UDP-CONNECT" || hm.Delay != 30 || hm.Timeout != 31 || hm.MaxRetriesDown != 3 || hm.MaxRetries != 1 {
		t.Fatalf("monitor %+v", hm)
	}
	for i, m := range p.Members {
		if m.ID != []string{"sample_member_id_1", "sample_member_id_2"}[i] || m.Address != []string{"10.0.0.99", "10.0.0.98"}[i] ||
			m.ProtocolPort != 82 || *m.Weight != 13 || m.MonitorAddress != "" || m.MonitorPort != 0 {
			t.Fatalf("member %d: %+v", i, m)
		}
	}
}

// TestOctaviasVariants: every algorithm, monitor type and disabled object
// Octavia renders for UDP pools.
func TestOctaviasVariants(t *testing.T) {
	for alg, want := range map[string]string{"LEAST_CONNECTIONS": "LEAST_CONNECTIONS", "SOURCE_IP": "SOURCE_IP", "ROUND_ROBIN": "ROUND_ROBIN"} {
		cfg := translate(t, render(t, udp(map[string]any{"persistence": false}, map[string]any{"lb_algorithm": alg})))
		if got := cfg.Pools[0].LBAlgorithm; got != want {
			t.Errorf("%s became %s", alg, got)
		}
		if cfg.Pools[0].SessionPersistence != nil {
			t.Errorf("persistence appeared: %+v", cfg.Pools[0].SessionPersistence)
		}
	}
	tcp := translate(t, render(t, udp(map[string]any{"monitor_proto": "TCP", "persistence": false}, nil))).Pools[0].HealthMonitor
	if tcp.Type != "TCP" || tcp.Timeout != 31 {
		t.Errorf("TCP monitor %+v", tcp)
	}
	http := translate(t, render(t, udp(map[string]any{"monitor_proto": "HTTP", "persistence": false, "monitor_expected_codes": "200-202"}, nil))).Pools[0].HealthMonitor
	if http.Type != "HTTP" || http.HTTPMethod != "GET" || http.URLPath != "/index.html" || http.ExpectedCodes != "200,201,202" {
		t.Errorf("HTTP monitor %+v", http)
	}
	none := translate(t, render(t, udp(map[string]any{"monitor": false, "persistence": false}, nil))).Pools[0]
	if none.HealthMonitor != nil || len(none.Members) != 2 {
		t.Errorf("without a monitor: %+v", none)
	}
	other := translate(t, render(t, udp(map[string]any{"monitor_ip_port": true, "persistence": false}, nil))).Pools[0].Members[0]
	if other.MonitorAddress != "192.168.1.1" || other.MonitorPort != 9000 {
		t.Errorf("monitor address and port: %+v", other)
	}
	disabledPool := translate(t, render(t, udp(map[string]any{"pool_enabled": false, "persistence": false}, nil)))
	if p := disabledPool.Pools[0]; p.ID != "sample_pool_id_1" || p.Enabled() || len(p.Members) != 0 || disabledPool.Listeners[0].DefaultPoolID != p.ID {
		t.Errorf("disabled pool: %+v", disabledPool)
	}
	if off := translate(t, render(t, udp(map[string]any{"enabled": false}, nil))); len(off.Listeners) != 0 {
		t.Errorf("a disabled listener serves: %+v", off.Listeners)
	}
	// A disabled member renders only its comment (the template's else
	// branch, which the samples do not reach): it is left out.
	data := render(t, udp(map[string]any{"persistence": false}, nil))
	second := regexp.MustCompile(`(?s)# Configuration for Member sample_member_id_2\s+real_server.*?\n    }\n`)
	cut := second.ReplaceAll(data, []byte("# Member sample_member_id_2 is disabled\n"))
	if p := translate(t, cut).Pools[0]; len(p.Members) != 1 || p.Members[0].ID != "sample_member_id_1" {
		t.Errorf("with a disabled member: %+v\n%s", p.Members, cut)
	}
}

// TestRefusals: SCTP, and anything Octavia does not render, is refused
// with the line and the reason.
func TestRefusals(t *testing.T) {
	sctp, err := exec.Command("../../scripts/octavia-peer", "render-lvs", "SCTP").Output()
	if err != nil {
		t.Fatal(err)
	}
	sample := render(t, udp(nil, nil))
	cases := map[string]struct {
		data []byte
		want string
	}{
		"sctp":        {sctp, "SCTP listeners are not supported by terminator: it has no SCTP data path"},
		"keyword":     {[]byte(strings.Replace(string(sample), "lb_kind NAT", "lb_kind NAT\n    quorum_up /bin/true", 1)), `line 13: "quorum_up /bin/true" in virtual_server is not part of the configuration Octavia renders`},
		"algorithm":   {[]byte(strings.Replace(string(sample), "lb_algo wrr", "lb_algo mh", 1)), "lb_algo mh is not one Octavia renders"},
		"script":      {[]byte(strings.Replace(string(sample), "/var/lib/octavia/lvs/check/udp_check.sh", "/tmp/evil.sh", 1)), "is not Octavia's UDP check script"},
		"unclosed":    {[]byte(strings.TrimSpace(string(sample))[:len(strings.TrimSpace(string(sample)))-1]), "is not closed"},
		"extra brace": {append(append([]byte{}, sample...), "}\n"...), "'}' closes no block"},
		"no pool id":  {[]byte(strings.Replace(string(sample), "# Configuration for Pool sample_pool_id_1", "", 1)), "has no '# Configuration for Pool <id>' comment"},
		"bad vip":     {[]byte(strings.Replace(string(sample), "10.0.0.2 80", "10.0.0.2 80000", 1)), `"10.0.0.2 80000" is not a VIP address and port`},
		"huge":        {make([]byte, maxConfig+1), "more than"},
	}
	for name, tc := range cases {
		_, err := Translate("sample_listener_id_1", tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}
