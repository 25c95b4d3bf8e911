package terminator_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyDirection keeps the architecture one-way: certificate
// backends and the certificate seam never import the proxy or the data
// plane; the proxy never imports a backend; only the binary wires them.
func TestDependencyDirection(t *testing.T) {
	const mod = "github.com/terminator-proxy/terminator/"
	forbidden := map[string][]string{
		"certs":              {"proxy", "dataplane", "backends/", "sni", "config"},
		"backends/file":      {"proxy", "dataplane", "sni", "cmd/", "mtlsctl", "backends/acme"},
		"backends/vault":     {"proxy", "dataplane", "sni", "cmd/", "mtlsctl", "backends/acme"},
		"backends/barbican":  {"proxy", "dataplane", "sni", "cmd/", "mtlsctl", "backends/acme"},
		"backends/acme":      {"proxy", "dataplane", "sni", "cmd/", "mtlsctl", "config", "backends/file", "backends/vault", "backends/barbican"},
		"mtlsctl":            {"proxy", "dataplane", "backends/", "cmd/"},
		"sni":                {"proxy", "dataplane", "backends/", "config"},
		"config":             {"proxy", "dataplane", "backends/", "sni", "certs"},
		"health":             {"proxy", "dataplane", "backends/", "config", "cmd/"},
		"proxy":              {"dataplane", "backends/", "config", "cmd/"},
		"proxy/httpwire":     {"proxy", "dataplane", "backends/", "config", "cmd/", "certs", "sni", "metrics", "proxy/l7", "proxy/lb"},
		"proxy/h2server":     {"proxy", "dataplane", "backends/", "config", "cmd/", "certs", "sni", "metrics", "proxy/l7", "proxy/lb"},
		"proxy/sockio":       {"proxy", "dataplane", "backends/", "config", "cmd/", "certs", "sni", "metrics", "proxy/l7", "proxy/lb", "proxy/h2server", "proxy/h2client", "proxy/httpwire", "proxy/upstream"},
		"proxy/upstream":     {"proxy", "dataplane", "backends/", "config", "cmd/", "certs", "sni", "metrics", "proxy/l7", "proxy/lb", "proxy/h2server", "proxy/httpwire"},
		"proxy/h2client":     {"proxy", "dataplane", "backends/", "config", "cmd/", "certs", "sni", "metrics", "proxy/l7", "proxy/lb", "proxy/h2server", "proxy/httpwire", "proxy/upstream"},
		"proxy/l7":           {"proxy", "dataplane", "backends/", "config", "cmd/", "certs", "sni", "metrics", "proxy/lb"},
		"proxy/lb":           {"proxy", "dataplane", "backends/", "config", "cmd/", "certs", "sni", "proxy/l7"},
		"dataplane":          {"backends/", "cmd/"},
		"amphora/heartbeat":  {"proxy", "dataplane", "backends/", "cmd/", "mtlsctl", "config"},
		"amphora/agentconf":  {"proxy", "dataplane", "backends/", "cmd/", "mtlsctl", "config"},
		"amphora/haproxycfg": {"proxy", "dataplane", "backends/", "cmd/", "mtlsctl"},
		"amphora/lvscfg":     {"proxy", "dataplane", "backends/", "cmd/", "mtlsctl", "udprelay"},
		"amphora/agent":      {"proxy", "dataplane", "backends/", "cmd/", "mtlsctl"},
		"upgrade":            {"proxy", "dataplane", "backends/", "cmd/", "mtlsctl", "config", "certs"},
		"udprelay":           {"proxy", "dataplane", "backends/", "cmd/", "mtlsctl", "config", "certs"},
		"peersync":           {"proxy", "dataplane", "backends/", "cmd/", "mtlsctl", "config", "certs"},
		"accesslog":          {"proxy", "dataplane", "backends/", "cmd/", "mtlsctl", "config", "certs"},
	}
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", "./"+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			rel, ok := strings.CutPrefix(dep, mod)
			if !ok {
				continue
			}
			for _, b := range bad {
				if rel == strings.TrimSuffix(b, "/") || (strings.HasSuffix(b, "/") && strings.HasPrefix(rel, b)) {
					t.Errorf("%s imports %s", pkg, rel)
				}
			}
		}
	}
}
