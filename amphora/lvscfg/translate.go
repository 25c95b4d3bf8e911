package lvscfg

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/terminator-proxy/terminator/config"
)

// algorithms maps keepalived's lb_algo to Octavia's names (Octavia renders
// wrr, lc and sh; rr and wlc mean the same here).
var algorithms = map[string]string{
	"wrr": config.AlgorithmRoundRobin, "rr": config.AlgorithmRoundRobin,
	"lc": "LEAST_CONNECTIONS", "wlc": "LEAST_CONNECTIONS", "sh": "SOURCE_IP",
}

// Translate returns the configuration of the UDP listener listenerID that
// data, Octavia's keepalived configuration for it, describes. A listener
// Octavia rendered without a virtual server (disabled, or without a
// default pool) serves nothing: the result has no listener. The result is
// not yet validated (config.Config.Validate does that), as haproxycfg's.
func Translate(listenerID string, data []byte) (*config.Config, error) {
	top, err := parse(data)
	if err != nil {
		return nil, err
	}
	t := &translation{groups: map[string][]string{}, l: config.Listener{ID: listenerID, Protocol: config.ProtocolUDP}}
	for _, st := range top {
		if err := t.topLevel(st); err != nil {
			return nil, err
		}
	}
	cfg := &config.Config{}
	if len(t.binds) == 0 {
		return cfg, nil
	}
	t.l.Bind, t.l.AdditionalBinds = t.binds[0], t.binds[1:]
	if t.pool != nil {
		t.l.DefaultPoolID = t.pool.ID
		cfg.Pools = []config.Pool{*t.pool}
	}
	cfg.Listeners = []config.Listener{t.l}
	return cfg, nil
}

type translation struct {
	groups map[string][]string // virtual_server_group name -> "ip:port"
	binds  []string
	l      config.Listener
	pool   *config.Pool
}

func unsupported(st *node, where string) error {
	return fmt.Errorf("line %d: %q in %s is not part of the configuration Octavia renders; terminator does not serve it", st.line, strings.Join(st.words, " "), where)
}

func (t *translation) topLevel(st *node) error {
	if len(st.words) == 0 {
		return nil // a standalone note
	}
	switch {
	case st.words[0] == "net_namespace" && len(st.words) == 2 && !st.block:
		return nil // the agent's namespace, where terminator's listeners bind anyway
	case st.words[0] == "virtual_server_group" && len(st.words) == 2 && st.block:
		for _, vip := range st.children {
			if len(vip.words) == 0 {
				continue // a comment
			}
			if len(vip.words) != 2 || vip.block {
				return unsupported(vip, "virtual_server_group")
			}
			addr, err := netip.ParseAddr(vip.words[0])
			port, perr := strconv.Atoi(vip.words[1])
			if err != nil || perr != nil || port < 1 || port > 65535 {
				return fmt.Errorf("line %d: %q is not a VIP address and port", vip.line, strings.Join(vip.words, " "))
			}
			t.groups[st.words[1]] = append(t.groups[st.words[1]], net.JoinHostPort(addr.String(), vip.words[1]))
		}
		return nil
	case st.words[0] == "virtual_server" && len(st.words) == 3 && st.words[1] == "group" && st.block:
		vips, ok := t.groups[st.words[2]]
		if !ok {
			return fmt.Errorf("line %d: virtual_server names group %q, which no virtual_server_group defines", st.line, st.words[2])
		}
		t.binds = append(t.binds, vips...)
		return t.virtualServer(st)
	}
	return unsupported(st, "the top level")
}

// virtualServer reads one virtual_server block (Octavia renders one per IP
// version, with the same pool).
func (t *translation) virtualServer(vs *node) error {
	if t.pool == nil {
		t.pool = &config.Pool{Protocol: config.ProtocolUDP, LBAlgorithm: config.AlgorithmRoundRobin}
	}
	p := t.pool
	var hm config.HealthMonitor
	var members []config.Member
	for _, st := range vs.children {
		if len(st.words) == 0 { // a note standing alone
			switch {
			case st.note.kind == "Pool":
				p.ID = st.note.id
				if st.note.disabled {
					p.AdminStateUp = new(bool)
				}
			}
			continue // a disabled member: Octavia renders nothing else of it
		}
		v := st.words[1:]
		switch key := st.words[0]; {
		case key == "lb_algo" && len(v) == 1:
			alg, ok := algorithms[v[0]]
			if !ok {
				return fmt.Errorf("line %d: lb_algo %s is not one Octavia renders (wrr, lc, sh)", st.line, v[0])
			}
			p.LBAlgorithm = alg
		case key == "lb_kind" && len(v) == 1 && v[0] == "NAT":
		case key == "protocol" && len(v) == 1:
			if v[0] != "UDP" {
				return fmt.Errorf("line %d: %s listeners are not supported by terminator: it has no %s data path", st.line, v[0], v[0])
			}
		case key == "persistence_timeout" && len(v) == 1:
			n, err := strconv.Atoi(v[0])
			if err != nil {
				return fmt.Errorf("line %d: persistence_timeout %q is not a number", st.line, v[0])
			}
			persistence(p).PersistenceTimeout = &n
		case key == "persistence_granularity" && len(v) == 1:
			persistence(p).PersistenceGranularity = v[0]
		case key == "delay_loop" && len(v) == 1:
			if err := atoi(st, v[0], &hm.Delay); err != nil {
				return err
			}
		case key == "delay_before_retry" && len(v) == 1: // Octavia renders the delay again
		case key == "retry" && len(v) == 1:
			if err := atoi(st, v[0], &hm.MaxRetriesDown); err != nil {
				return err
			}
		case key == "real_server" && len(v) == 2 && st.block:
			m, limit, err := realServer(st, &hm)
			if err != nil {
				return err
			}
			if limit > 0 { // the listener's connection_limit, rendered per member
				t.l.ConnectionLimit = &limit
			}
			members = append(members, m)
		default:
			return unsupported(st, "virtual_server")
		}
	}
	if hm.Type != "" {
		hm.MaxRetries = 1 // keepalived brings a member back after one success
		if hm.MaxRetriesDown == 0 {
			hm.MaxRetriesDown = 1 // keepalived's retry default
		}
		p.HealthMonitor = &hm
	}
	p.Members = append(p.Members, members...)
	if p.ID == "" {
		return fmt.Errorf("line %d: the virtual_server has no '# Configuration for Pool <id>' comment naming its pool", vs.line)
	}
	return nil
}

func persistence(p *config.Pool) *config.SessionPersistence {
	if p.SessionPersistence == nil {
		p.SessionPersistence = &config.SessionPersistence{Type: "SOURCE_IP"}
	}
	return p.SessionPersistence
}

func atoi(st *node, s string, into *int) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("line %d: %q is not a count", st.line, s)
	}
	*into = n
	return nil
}
