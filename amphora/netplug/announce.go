package netplug

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

// garps is how many gratuitous ARPs announce a VIP, a little apart so
// that one lost frame does not leave a switch or router with the old MAC.
const garps = 3

// announce sends gratuitous ARP for the IPv4 VIPs on iface in the
// namespace, so neighbours update their caches at once (a re-plugged or
// failed-over VIP has a new MAC). IPv6 VIPs are not announced yet.
func (p *Plugger) announce(iface string, vips []netip.Addr) error {
	var v4 []netip.Addr
	for _, v := range vips {
		if v.Is4() {
			v4 = append(v4, v)
		}
	}
	if len(v4) == 0 {
		return nil
	}
	var aerr error
	err := p.inNamespace(func() {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			aerr = err
			return
		}
		c, err := arp.Dial(ifi)
		if err != nil {
			aerr = fmt.Errorf("ARP socket on %s: %w", iface, err)
			return
		}
		defer c.Close()
		for i := range garps {
			if i > 0 {
				time.Sleep(50 * time.Millisecond)
			}
			for _, v := range v4 {
				pkt, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, v, ethernet.Broadcast, v)
				if err == nil {
					err = c.WriteTo(pkt, ethernet.Broadcast)
				}
				if err != nil {
					aerr = fmt.Errorf("gratuitous ARP for %s on %s: %w", v, iface, err)
					return
				}
			}
		}
	})
	if err != nil {
		return err
	}
	return aerr
}
