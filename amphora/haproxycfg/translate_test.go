package haproxycfg_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/terminator-proxy/terminator/amphora/haproxycfg"
	"github.com/terminator-proxy/terminator/config"
)

// render asks Octavia's own JinjaTemplater for the haproxy.cfg of the
// listeners built by Octavia's sample builders with these arguments.
func render(t *testing.T, listeners ...map[string]any) []byte {
	t.Helper()
	spec, _ := json.Marshal(map[string]any{"listeners": listeners})
	out, err := exec.Command("../../scripts/octavia-peer", "render", string(spec)).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("Octavia's templater: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("Octavia's templater (make deps installs python3-octavia): %v", err)
	}
	return out
}

// certs serves the crt-list files the rendered bind lines name.
func certs(path string) ([]byte, error) {
	if strings.HasSuffix(path, "/sample_loadbalancer_id_1/tls.pem") {
		return []byte("/var/lib/octavia/certs/sample_loadbalancer_id_1/tls_container_id.pem\n/var/lib/octavia/certs/sample_loadbalancer_id_1/sni1.pem\n"), nil
	}
	return nil, fs.ErrNotExist
}

func translate(t *testing.T, cfg []byte) *config.Config {
	t.Helper()
	c, err := haproxycfg.Translate(cfg, certs)
	if err != nil {
		t.Fatalf("%v\n---\n%s", err, cfg)
	}
	c.ApplyDefaults()
	return c
}

func pool(c *config.Config, name string) *config.Pool {
	for i := range c.Pools {
		if c.Pools[i].Name == name {
			return &c.Pools[i]
		}
	}
	return nil
}

// TestTranslatesWhatOctaviaRenders: the configurations Octavia's own
// templater renders for HTTP and TERMINATED_HTTPS listeners, with client
// authentication, CRL, L7 policies, every persistence type and health
// monitor, PROXY pools and re-encryption, become the terminator
// configuration with the same meaning, and that configuration validates.
func TestTranslatesWhatOctaviaRenders(t *testing.T) {
	cfg := render(t,
		map[string]any{"id": "tls", "proto": "TERMINATED_HTTPS", "tls": true, "sni": true, "client_ca_cert": true, "client_crl_cert": true, "l7": true,
			"insert_headers":   map[string]string{"X-Forwarded-For": "true", "X-Forwarded-Port": "true", "X-Forwarded-Proto": "true", "X-SSL-Client-CN": "true", "X-SSL-Client-Has-Cert": "True"},
			"connection_limit": 1234, "timeout_client_data": 7000, "timeout_member_connect": 800, "timeout_member_data": 9000},
		map[string]any{"id": "http", "proto": "HTTP", "persistence_type": "APP_COOKIE", "persistence_cookie": "JSESSIONID", "hm_host_http_check": true,
			"monitor_ip_port": true, "backup_member": true, "disabled_member": true},
		map[string]any{"id": "reenc", "proto": "HTTP", "tls_enabled": true, "pool_cert": true, "pool_ca_cert": true, "pool_crl": true, "persistence_type": "SOURCE_IP"},
		map[string]any{"id": "proxy", "proto": "HTTP", "be_proto": "PROXY", "monitor_proto": "TLS-HELLO"},
		map[string]any{"id": "proxy2", "proto": "HTTP", "be_proto": "PROXYV2", "monitor_proto": "PING"},
	)
	// Octavia expands expected_codes "200-204" to an alternation.
	cfg = []byte(strings.Replace(string(cfg), "rstatus 418", "rstatus 200|201|202|203|204", 1))
	c := translate(t, cfg)
	if len(c.Listeners) != 5 {
		t.Fatalf("%d listeners", len(c.Listeners))
	}
	tls := c.Listeners[0]
	if tls.ID != "tls" || tls.Protocol != "TERMINATED_HTTPS" || tls.Bind != "10.0.0.2:443" ||
		tls.DefaultTLSContainerRef != "file:///var/lib/octavia/certs/sample_loadbalancer_id_1/tls_container_id.pem" ||
		len(tls.SNIContainerRefs) != 1 || tls.ClientAuthentication != "MANDATORY" ||
		!strings.HasSuffix(tls.ClientCATLSContainerRef, "/client_ca.pem") || !strings.HasSuffix(tls.ClientCRLContainerRef, "/SHA_ID.pem") ||
		strings.Join(tls.TLSVersions, ",") != "TLSv1.2,TLSv1.3" || strings.Join(tls.ALPNProtocols, ",") != "h2,http/1.1,http/1.0" ||
		tls.TLSCiphers != config.OctaviaListenerCiphers || *tls.ConnectionLimit != 1234 ||
		*tls.TimeoutClientData != 7000 || *tls.TimeoutMemberConnect != 800 || *tls.TimeoutMemberData != 9000 {
		t.Fatalf("TERMINATED_HTTPS listener: %+v", tls)
	}
	for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto", "X-SSL-Client-CN", "X-SSL-Client-Has-Cert"} {
		if !tls.HeaderEnabled(h) {
			t.Errorf("insert header %s lost: %v", h, tls.InsertHeaders)
		}
	}
	if len(tls.L7Policies) != 4 || tls.L7Policies[3].Action != "REDIRECT_PREFIX" || tls.L7Policies[3].RedirectPrefix != "https://example.com" {
		t.Fatalf("L7 policies: %+v", tls.L7Policies)
	}
	pol := tls.L7Policies[0]
	if pol.Action != "REDIRECT_TO_POOL" || pol.RedirectPool != "sample_pool_id_2:tls" || pol.Rules[0] != (config.L7Rule{Type: "PATH", CompareType: "STARTS_WITH", Value: "/api"}) {
		t.Fatalf("first policy: %+v", pol)
	}
	if r := tls.L7Policies[1].Rules[0]; tls.L7Policies[1].Action != "REDIRECT_TO_URL" || r.Type != "HEADER" || r.Key != "Some-header" || r.Value != `This string\ with stuff` || !r.Invert {
		t.Fatalf("second policy: %+v", tls.L7Policies[1])
	}
	if p := tls.L7Policies[2]; p.Action != "REJECT" || p.Rules[1].Type != "HOST_NAME" || p.Rules[1].CompareType != "ENDS_WITH" {
		t.Fatalf("third policy: %+v", p)
	}
	tp := pool(c, "sample_pool_id_1:tls")
	if tp == nil || tp.Protocol != "HTTP" || tp.SessionPersistence.Type != "HTTP_COOKIE" || tp.HealthMonitor.Type != "HTTP" ||
		tp.HealthMonitor.Delay != 30 || tp.HealthMonitor.Timeout != 31 || tp.HealthMonitor.MaxRetries != 2 || tp.HealthMonitor.MaxRetriesDown != 3 ||
		tp.HealthMonitor.URLPath != "/index.html" || tp.HealthMonitor.ExpectedCodes != "200,201,202,203,204" || len(tp.Members) != 2 || *tp.Members[0].Weight != 13 {
		t.Fatalf("TLS listener's pool: %+v %+v", tp, tp.HealthMonitor)
	}

	hp := pool(c, "sample_pool_id_1:http")
	m1, m2 := hp.Members[0], hp.Members[1]
	if hp.SessionPersistence.Type != "APP_COOKIE" || hp.SessionPersistence.CookieName != "JSESSIONID" ||
		hp.HealthMonitor.DomainName != "testlab.com" || *hp.HealthMonitor.HTTPVersion != 1.1 || hp.HealthMonitor.ExpectedCodes != "418" ||
		m1.MonitorAddress != "192.168.1.1" || m1.MonitorPort != 9000 || !m2.Backup || m2.Enabled() {
		t.Fatalf("HTTP pool: %+v %+v %+v %+v", hp, hp.HealthMonitor, m1, m2)
	}
	rp := pool(c, "sample_pool_id_1:reenc")
	if !rp.TLSEnabled || !strings.HasPrefix(rp.TLSContainerRef, "file:///") || !strings.HasPrefix(rp.CATLSContainerRef, "file:///") ||
		!strings.HasPrefix(rp.CRLContainerRef, "file:///") || rp.SessionPersistence.Type != "SOURCE_IP" || strings.Join(rp.TLSVersions, ",") != "TLSv1.2,TLSv1.3" {
		t.Fatalf("re-encrypting pool: %+v", rp)
	}
	if p := pool(c, "sample_pool_id_1:proxy"); p.Protocol != "PROXY" || p.HealthMonitor.Type != "TLS-HELLO" {
		t.Fatalf("PROXY pool: %+v %+v", p, p.HealthMonitor)
	}
	if p := pool(c, "sample_pool_id_1:proxy2"); p.Protocol != "PROXYV2" || p.HealthMonitor.Type != "PING" {
		t.Fatalf("PROXYV2 pool: %+v %+v", p, p.HealthMonitor)
	}
	// Octavia's sample builders give every HTTP listener port 80; a real
	// load balancer's listeners have distinct ports.
	for i := range c.Listeners {
		c.Listeners[i].Bind = fmt.Sprintf("10.0.0.2:%d", 8000+i)
	}
	if _, err := c.Validate(); err != nil {
		t.Fatalf("the translation does not validate: %v", err)
	}
}

// TestRefusesWhatOctaviaDoesNotRender: a directive outside the rendered
// subset, a crt-list naming nothing or missing, an undefined backend:
// each is refused with its line, as haproxy -c reports.
func TestRefusesWhatOctaviaDoesNotRender(t *testing.T) {
	base := string(render(t, map[string]any{"id": "web", "proto": "HTTP"}))
	cases := []struct{ name, edit, want string }{
		{"unknown frontend keyword", strings.Replace(base, "    mode http\n", "    mode http\n    option http-use-proxy-header\n", 1),
			"'option http-use-proxy-header' in 'frontend' section is not part of the configuration Octavia renders"},
		{"lua in global", strings.Replace(base, "global\n", "global\n    lua-load /tmp/evil.lua\n", 1), "'lua-load /tmp/evil.lua' in 'global' section"},
		{"missing crt-list", strings.Replace(base, "bind 10.0.0.2:80", "bind 10.0.0.2:443 ssl crt-list /var/lib/octavia/certs/x/missing.pem", 1), "crt-list '/var/lib/octavia/certs/x/missing.pem'"},
		{"undefined backend", strings.Replace(base, "default_backend sample_pool_id_1:web", "default_backend nowhere", 1), "default_backend 'nowhere' names no backend"},
		{"server option", strings.Replace(base, "weight 13", "weight 13 maxconn 5 agent-check", 1), "server option 'maxconn'"},
		{"unterminated quote", base + "frontend x\n    bind \"1.2.3.4:80\n", "unterminated quote"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := haproxycfg.Translate([]byte(tc.edit), certs)
			var ps haproxycfg.Problems
			if !errors.As(err, &ps) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "[ALERT] config : parsing [haproxy.cfg:") {
				t.Fatalf("%v; want an alert with %q", err, tc.want)
			}
		})
	}
}

// TestTranslatesLayer4Listeners: TCP and HTTPS (pass-through) listeners,
// which Octavia renders alike in mode tcp, become TCP listeners with TCP
// pools, SOURCE_IP persistence and TCP or TLS-HELLO monitors.
func TestTranslatesLayer4Listeners(t *testing.T) {
	c := translate(t, render(t,
		map[string]any{"id": "tcp", "proto": "TCP", "persistence_type": "SOURCE_IP", "monitor_proto": "TCP"},
		map[string]any{"id": "https", "proto": "HTTPS", "monitor_proto": "TLS-HELLO"},
	))
	for i, want := range []string{"TCP", "TLS-HELLO"} {
		l := c.Listeners[i]
		p := pool(c, l.DefaultPool)
		if l.Protocol != "TCP" || p == nil || p.Protocol != "TCP" || p.HealthMonitor.Type != want {
			t.Fatalf("listener %s: %+v, pool %+v", l.ID, l, p)
		}
	}
	if sp := pool(c, "sample_pool_id_1:tcp").SessionPersistence; sp == nil || sp.Type != "SOURCE_IP" {
		t.Fatalf("TCP persistence: %+v", sp)
	}
	c.Listeners[1].Bind = "10.0.0.2:8443" // the samples give both port 80
	if _, err := c.Validate(); err != nil {
		t.Fatalf("the translation does not validate: %v", err)
	}
}

// TestTranslatesAdditionalVIPs: a listener on additional VIPs, IPv6 among
// them as Octavia writes it without brackets, keeps every address.
func TestTranslatesAdditionalVIPs(t *testing.T) {
	c := translate(t, render(t, map[string]any{"id": "multi", "proto": "HTTP", "additional_vips": true}))
	l := c.Listeners[0]
	if l.Bind != "10.0.0.2:80" || strings.Join(l.AdditionalBinds, " ") != "10.0.1.2:80 [2001:db8::2]:80" {
		t.Fatalf("binds %q %q", l.Bind, l.AdditionalBinds)
	}
	if _, err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestPeersSection: the peers section Octavia renders for an
// ACTIVE_STANDBY load balancer lists both amphorae under the names
// LocalPeer computes from their ids, with their VRRP addresses.
func TestPeersSection(t *testing.T) {
	ids := []string{"a1a1a1a1-0000-4000-8000-000000000001", "b2b2b2b2-0000-4000-8000-000000000002"}
	spec, _ := json.Marshal(map[string]any{
		"amphorae":  []map[string]any{{"id": ids[0], "vrrp_ip": "10.77.0.11"}, {"id": ids[1], "vrrp_ip": "10.77.0.12"}},
		"listeners": []map[string]any{{"id": "web", "proto": "HTTP", "topology": "ACTIVE_STANDBY", "persistence_type": "SOURCE_IP"}},
	})
	out, err := exec.Command("../../scripts/octavia-peer", "render", string(spec)).Output()
	if err != nil {
		t.Fatalf("Octavia's templater: %v", err)
	}
	cfg := translate(t, out)
	want := []config.Peer{{Name: haproxycfg.LocalPeer(ids[0]), Address: "10.77.0.11:1025"}, {Name: haproxycfg.LocalPeer(ids[1]), Address: "10.77.0.12:1025"}}
	if cfg.Peers == nil || !slices.Equal(cfg.Peers.Peers, want) {
		t.Fatalf("peers %+v, want %+v", cfg.Peers, want)
	}
	if single := translate(t, render(t, map[string]any{"id": "web", "proto": "HTTP"})); single.Peers != nil {
		t.Fatalf("a SINGLE load balancer has peers: %+v", single.Peers)
	}
}
