package netplug

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/terminator-proxy/terminator/internal/atomicfile"
)

// Rule is one entry of PUT /1.0/interface/<ip>/rules: traffic of protocol
// from cidr (any source when null) to port may reach the VIP interface.
type Rule struct {
	Protocol string  `json:"protocol"` // TCP, UDP, SCTP or VRRP
	CIDR     *string `json:"cidr"`
	Port     int     `json:"port"`
}

// maxRules bounds a rules body: Octavia sends one per listener port and
// allowed CIDR.
const maxRules = 4096

var ruleProtocols = map[string]byte{"TCP": unix.IPPROTO_TCP, "UDP": unix.IPPROTO_UDP, "SCTP": unix.IPPROTO_SCTP, "VRRP": 112}

// ParseRules checks a rules body as Octavia's jsonschema does, naming the
// first bad entry.
func ParseRules(body []byte) ([]Rule, error) {
	var rules []Rule
	if err := json.Unmarshal(body, &rules); err != nil {
		return nil, &Error{Status: 400, Message: "Invalid rules information", Details: "the body is not a JSON array of {protocol, cidr, port}: " + err.Error()}
	}
	if len(rules) > maxRules {
		return nil, &Error{Status: 400, Message: "Invalid rules information", Details: fmt.Sprintf("%d rules, more than %d", len(rules), maxRules)}
	}
	for i, r := range rules {
		bad := func(format string, args ...any) error {
			return &Error{Status: 400, Message: "Invalid rules information", Details: fmt.Sprintf("rules[%d]: ", i) + fmt.Sprintf(format, args...)}
		}
		if _, ok := ruleProtocols[r.Protocol]; !ok {
			return nil, bad("protocol %q is not TCP, UDP, SCTP or VRRP", r.Protocol)
		}
		if r.Port < 1 || r.Port > 65535 {
			return nil, bad("port %d is outside 1-65535", r.Port)
		}
		if r.CIDR != nil {
			if _, err := netip.ParsePrefix(*r.CIDR); err != nil {
				return nil, bad("cidr %q is not a CIDR", *r.CIDR)
			}
		}
	}
	return rules, nil
}

// The table and chain the VIP rules live in, replaced whole on each PUT.
const (
	rulesTable = "amphora_vip"
	rulesChain = "amphora_vip_chain"
)

// SetRules makes the VIP interface holding ip accept only rules' traffic
// (and ICMP/ICMPv6, which neighbour discovery and path MTU need): an
// ingress chain on that device with policy drop, replaced atomically.
// The rules are recorded and loaded again by Restore.
func (p *Plugger) SetRules(ip string, rules []Rule) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	iface, err := p.interfaceOf(ip)
	if err != nil {
		return "", err
	}
	if err := p.loadRules(iface, rules); err != nil {
		return "", err
	}
	return iface, p.recordRules(ip, rules)
}

// rulesFile records the last rules per VIP address.
func (p *Plugger) rulesFile() string {
	if p.o.StateFile == "" {
		return ""
	}
	return p.o.StateFile + ".rules"
}

func (p *Plugger) savedRules() (map[string][]Rule, error) {
	saved := map[string][]Rule{}
	f := p.rulesFile()
	if f == "" {
		return saved, nil
	}
	b, err := os.ReadFile(f)
	if errors.Is(err, fs.ErrNotExist) {
		return saved, nil
	}
	if err == nil && len(b) > maxState {
		err = fmt.Errorf("%d bytes, more than %d", len(b), maxState)
	}
	if err == nil {
		err = json.Unmarshal(b, &saved)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f, err)
	}
	return saved, nil
}

func (p *Plugger) recordRules(ip string, rules []Rule) error {
	saved, err := p.savedRules()
	if err != nil || p.rulesFile() == "" {
		return err
	}
	saved[ip] = rules
	b, err := json.MarshalIndent(saved, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(p.rulesFile(), b, 0o644)
}

// restoreRules loads every recorded rule set again; p.mu is held.
func (p *Plugger) restoreRules() error {
	saved, err := p.savedRules()
	if err != nil {
		return err
	}
	var errs []error
	for ip, rules := range saved {
		iface, err := p.interfaceOf(ip)
		if err == nil {
			err = p.loadRules(iface, rules)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("rules of %s: %w", ip, err))
		}
	}
	return errors.Join(errs...)
}

// loadRules replaces iface's rules; p.mu is held.
func (p *Plugger) loadRules(iface string, rules []Rule) error {
	ns, err := netns.GetFromName(p.o.Namespace)
	if err != nil {
		return fmt.Errorf("opening namespace %s: %w", p.o.Namespace, err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return fmt.Errorf("nftables in %s: %w", p.o.Namespace, err)
	}
	defer c.CloseLasting()
	// Add-delete-add in one batch replaces the table whether or not it
	// existed, atomically: no moment passes with no rules.
	// A netdev ingress chain sees every frame of the device before
	// routing, as Octavia's does; non-IP frames (ARP) pass.
	t := &nftables.Table{Name: rulesTable, Family: nftables.TableFamilyNetdev}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	drop := nftables.ChainPolicyDrop
	ch := c.AddChain(&nftables.Chain{Name: rulesChain, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookIngress, Priority: nftables.ChainPriorityFilter, Device: iface, Policy: &drop})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ethertype(unix.ETH_P_IP)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ethertype(unix.ETH_P_IPV6)},
		accept(),
	}})
	for _, proto := range []byte{unix.IPPROTO_ICMP, unix.IPPROTO_ICMPV6} {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(l4proto(proto), accept())})
	}
	for _, r := range rules {
		var ex []expr.Any
		if r.CIDR != nil {
			ex = append(ex, source(netip.MustParsePrefix(*r.CIDR).Masked())...)
		}
		ex = append(ex, l4proto(ruleProtocols[r.Protocol])...)
		if r.Protocol != "VRRP" {
			port := make([]byte, 2)
			binary.BigEndian.PutUint16(port, uint16(r.Port))
			ex = append(ex,
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port})
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(ex, accept())})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("loading the rules for %s: %w", iface, err)
	}
	return nil
}

func accept() expr.Any { return &expr.Verdict{Kind: expr.VerdictAccept} }

func l4proto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

// source matches packets from the network src, of its IP version.
func source(src netip.Prefix) []expr.Any {
	proto, off := ethertype(unix.ETH_P_IP), uint32(12)
	if src.Addr().Is6() {
		proto, off = ethertype(unix.ETH_P_IPV6), 8
	}
	n := uint32(src.Addr().BitLen() / 8)
	mask := ipNet(src).Mask
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: proto},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: src.Addr().AsSlice()},
	}
}

func ethertype(t uint16) []byte { return binary.BigEndian.AppendUint16(nil, t) }
