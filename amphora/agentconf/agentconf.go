// Package agentconf reads the amphora agent's own configuration file,
// /etc/octavia/amphora-agent.conf, an oslo.config INI that Octavia's
// controller renders (AgentJinjaTemplater) and may replace at runtime
// (PUT /1.0/config). Only the options terminator agent uses are read;
// the others Octavia writes are accepted and ignored. Defaults are
// Octavia's.
package agentconf

import (
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"gopkg.in/ini.v1"
)

// Config is what terminator agent takes from the file.
type Config struct {
	// [amphora_agent]
	AmphoraID          string
	ServerCert         string        // agent_server_cert: certificate and key in one PEM
	ServerCA           string        // agent_server_ca: the CA controllers' client certificates chain to
	RequestReadTimeout time.Duration // agent_request_read_timeout (s)
	TLSVersion         uint16        // agent_tls_protocol, exactly this version (as Python's PROTOCOL_TLSv1_2)
	// [haproxy_amphora]
	BasePath    string // base_path: per load balancer configuration, state, counters
	BaseCertDir string // base_cert_dir: uploaded certificates
	BindHost    string // bind_host
	BindPort    int    // bind_port
	// [health_manager]
	Heartbeat Heartbeat
	// [controller_worker] loadbalancer_topology: SINGLE or ACTIVE_STANDBY
	Topology string
}

// Heartbeat holds the mutable [health_manager] options.
type Heartbeat struct {
	Destinations []string      // controller_ip_port_list, as host:port
	Interval     time.Duration // heartbeat_interval (s)
	Key          string        // heartbeat_key; unset is the string "None", as Octavia sends it
}

// Problem is one bad or missing option, named as section.option.
type Problem struct {
	Option, Message string
}

// Problems lists every problem of a file.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Option + ": " + p.Message
	}
	return strings.Join(lines, "\n")
}

var tlsVersions = map[string]uint16{"TLSv1.2": tls.VersionTLS12, "TLSv1.3": tls.VersionTLS13}

// Parse reads the file's contents. Every problem is reported at once.
func Parse(data []byte) (*Config, error) {
	f, err := ini.LoadSources(ini.LoadOptions{AllowPythonMultilineValues: true, SpaceBeforeInlineComment: true, Insensitive: false}, data)
	if err != nil {
		return nil, fmt.Errorf("amphora agent config: %w", err)
	}
	var ps Problems
	get := func(section, key, def string) string {
		if s, err := f.GetSection(section); err == nil && s.HasKey(key) {
			return strings.TrimSpace(s.Key(key).String())
		}
		return def
	}
	bad := func(section, key, format string, args ...any) {
		ps = append(ps, Problem{Option: section + "." + key, Message: fmt.Sprintf(format, args...)})
	}
	required := func(section, key string) string {
		v := get(section, key, "")
		if v == "" {
			bad(section, key, "is required")
		}
		return v
	}
	seconds := func(section, key string, def int) time.Duration {
		v := get(section, key, strconv.Itoa(def))
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			bad(section, key, "must be a whole number of seconds, not %q", v)
			return time.Duration(def) * time.Second
		}
		return time.Duration(n) * time.Second
	}
	c := &Config{
		AmphoraID:          required("amphora_agent", "amphora_id"),
		ServerCert:         get("amphora_agent", "agent_server_cert", "/etc/octavia/certs/server.pem"),
		ServerCA:           get("amphora_agent", "agent_server_ca", "/etc/octavia/certs/client_ca.pem"),
		RequestReadTimeout: seconds("amphora_agent", "agent_request_read_timeout", 180),
		BasePath:           get("haproxy_amphora", "base_path", "/var/lib/octavia"),
		BaseCertDir:        get("haproxy_amphora", "base_cert_dir", "/var/lib/octavia/certs"),
		BindHost:           get("haproxy_amphora", "bind_host", "::"),
	}
	proto := get("amphora_agent", "agent_tls_protocol", "TLSv1.2")
	if v, ok := tlsVersions[proto]; ok {
		c.TLSVersion = v
	} else {
		bad("amphora_agent", "agent_tls_protocol", "%q is not served (TLSv1.2 or TLSv1.3; SSLv3, TLSv1 and TLSv1.1 are refused as insecure)", proto)
	}
	if net.ParseIP(c.BindHost) == nil {
		bad("haproxy_amphora", "bind_host", "%q is not an IP address", c.BindHost)
	}
	port := get("haproxy_amphora", "bind_port", "9443")
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		bad("haproxy_amphora", "bind_port", "must be a port number 1-65535, not %q", port)
	} else {
		c.BindPort = n
	}
	c.Topology = get("controller_worker", "loadbalancer_topology", "SINGLE")
	if c.Topology != "SINGLE" && c.Topology != "ACTIVE_STANDBY" {
		bad("controller_worker", "loadbalancer_topology", "%q is neither SINGLE nor ACTIVE_STANDBY", c.Topology)
	}
	hb, hps := parseHeartbeat(get)
	c.Heartbeat = hb
	ps = append(ps, hps...)
	if len(ps) > 0 {
		return nil, ps
	}
	return c, nil
}

// parseHeartbeat reads [health_manager].
func parseHeartbeat(get func(section, key, def string) string) (Heartbeat, Problems) {
	var ps Problems
	hb := Heartbeat{Key: get("health_manager", "heartbeat_key", "None")}
	iv := get("health_manager", "heartbeat_interval", "10")
	if n, err := strconv.Atoi(iv); err != nil || n < 1 {
		ps = append(ps, Problem{"health_manager.heartbeat_interval", fmt.Sprintf("must be a whole number of seconds ≥ 1, not %q", iv)})
		hb.Interval = 10 * time.Second
	} else {
		hb.Interval = time.Duration(n) * time.Second
	}
	for _, d := range strings.Split(get("health_manager", "controller_ip_port_list", ""), ",") {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		host, port, err := net.SplitHostPort(d)
		if err == nil && net.ParseIP(host) == nil {
			err = fmt.Errorf("%q is not an IP address", host)
		}
		if err == nil {
			if n, perr := strconv.Atoi(port); perr != nil || n < 1 || n > 65535 {
				err = fmt.Errorf("bad port %q", port)
			}
		}
		if err != nil {
			ps = append(ps, Problem{"health_manager.controller_ip_port_list", fmt.Sprintf("%q: %v (write IP:PORT, [IPv6]:PORT)", d, err)})
			continue
		}
		hb.Destinations = append(hb.Destinations, net.JoinHostPort(host, port))
	}
	return hb, ps
}
