package lvscfg

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/terminator-proxy/terminator/config"
)

// realServer reads one real_server block: the member, its uthreshold (the
// listener's connection_limit; 0 when absent) and its check, which sets
// the pool's monitor (Octavia renders the same check for every member).
func realServer(rs *node, hm *config.HealthMonitor) (m config.Member, limit int, err error) {
	if rs.note.kind != "Member" || rs.note.disabled {
		return m, 0, fmt.Errorf("line %d: the real_server has no '# Configuration for Member <id>' comment naming it", rs.line)
	}
	m.ID = rs.note.id
	addr, err := netip.ParseAddr(rs.words[1])
	port, perr := strconv.Atoi(rs.words[2])
	if err != nil || perr != nil || port < 1 || port > 65535 {
		return m, 0, fmt.Errorf("line %d: %q is not a member address and port", rs.line, strings.Join(rs.words[1:], " "))
	}
	m.Address, m.ProtocolPort = addr.String(), port
	for _, st := range rs.children {
		if len(st.words) == 0 {
			continue // a comment
		}
		v := st.words[1:]
		switch key := st.words[0]; {
		case key == "weight" && len(v) == 1:
			var w int
			if err := atoi(st, v[0], &w); err != nil {
				return m, 0, err
			}
			m.Weight = &w
		case key == "uthreshold" && len(v) == 1:
			if err := atoi(st, v[0], &limit); err != nil {
				return m, 0, err
			}
		case key == "MISC_CHECK" && st.block:
			err = miscCheck(st, &m, hm)
		case key == "TCP_CHECK" && st.block:
			hm.Type = "TCP"
			err = connectOptions(st, &m, hm, nil)
		case key == "HTTP_GET" && st.block:
			hm.Type, hm.HTTPMethod = "HTTP", "GET"
			var codes []string
			err = connectOptions(st, &m, hm, &codes)
			hm.ExpectedCodes = strings.Join(codes, ",")
		default:
			err = unsupported(st, "real_server")
		}
		if err != nil {
			return m, 0, err
		}
	}
	return m, limit, nil
}

// miscCheck reads the UDP-CONNECT check: Octavia's check script with the
// address and port to probe. SCTP's checker is refused.
func miscCheck(st *node, m *config.Member, hm *config.HealthMonitor) error {
	for _, c := range st.children {
		if len(c.words) == 0 {
			continue // a comment
		}
		v := c.words[1:]
		switch {
		case c.words[0] == "misc_path" && len(v) == 1:
			args := strings.Fields(v[0])
			if len(args) > 0 && strings.HasSuffix(args[0], "amphora-health-checker") {
				return fmt.Errorf("line %d: SCTP health monitors are not supported by terminator: it has no SCTP data path", c.line)
			}
			if len(args) != 3 || !strings.HasSuffix(args[0], "/udp_check.sh") {
				return fmt.Errorf("line %d: misc_path %q is not Octavia's UDP check script with an address and port", c.line, v[0])
			}
			hm.Type = "UDP-CONNECT"
			if err := monitorTarget(c, m, args[1], args[2]); err != nil {
				return err
			}
		case c.words[0] == "misc_timeout" && len(v) == 1:
			if err := atoi(c, v[0], &hm.Timeout); err != nil {
				return err
			}
		default:
			return unsupported(c, "MISC_CHECK")
		}
	}
	return nil
}

// connectOptions reads TCP_CHECK and HTTP_GET: the address and port to
// probe, the timeout and, for HTTP_GET, its url blocks (one per expected
// code, with the same path).
func connectOptions(st *node, m *config.Member, hm *config.HealthMonitor, codes *[]string) error {
	var ip, port string
	for _, c := range st.children {
		if len(c.words) == 0 {
			continue // a comment
		}
		v := c.words[1:]
		switch {
		case c.words[0] == "connect_ip" && len(v) == 1:
			ip = v[0]
		case c.words[0] == "connect_port" && len(v) == 1:
			port = v[0]
		case c.words[0] == "connect_timeout" && len(v) == 1:
			if err := atoi(c, v[0], &hm.Timeout); err != nil {
				return err
			}
		case c.words[0] == "url" && c.block && codes != nil:
			for _, u := range c.children {
				switch {
				case len(u.words) == 0: // a comment
				case u.words[0] == "path" && len(u.words) == 2:
					hm.URLPath = u.words[1]
				case u.words[0] == "status_code" && len(u.words) == 2:
					*codes = append(*codes, u.words[1])
				default:
					return unsupported(u, "url")
				}
			}
		default:
			return unsupported(c, st.words[0])
		}
	}
	if ip == "" || port == "" {
		return fmt.Errorf("line %d: %s without connect_ip and connect_port", st.line, st.words[0])
	}
	return monitorTarget(st, m, ip, port)
}

// monitorTarget sets the member's monitor address and port when the check
// probes somewhere else than the member.
func monitorTarget(st *node, m *config.Member, ip, port string) error {
	a, err := netip.ParseAddr(ip)
	p, perr := strconv.Atoi(port)
	if err != nil || perr != nil || p < 1 || p > 65535 {
		return fmt.Errorf("line %d: %s %s is not an address and port to check", st.line, ip, port)
	}
	if a.String() != m.Address {
		m.MonitorAddress = a.String()
	}
	if p != m.ProtocolPort {
		m.MonitorPort = p
	}
	return nil
}
