package netplug

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

// announcements is how many times each VIP is announced, a little apart
// so that one lost frame does not leave a switch or router with the old
// MAC.
const announcements = 3

// announce sends gratuitous ARP for the IPv4 VIPs and unsolicited,
// overriding neighbour advertisements (RFC 4861 §7.2.6) for the IPv6 ones
// on iface in the namespace, so neighbours update their caches at once (a
// re-plugged or failed-over VIP has a new MAC).
func (p *Plugger) announce(iface string, vips []netip.Addr) error {
	if len(vips) == 0 {
		return nil
	}
	return p.inNamespace(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		// One send per VIP: IPv4 VIPs share an ARP client; each IPv6 VIP
		// advertises from its own address (added without DAD, so usable
		// at once).
		sends := make([]func() error, 0, len(vips))
		var arpc *arp.Client
		for _, v := range vips {
			if v.Is6() {
				c, _, err := ndp.Listen(ifi, ndp.Addr(v.String()))
				if err != nil {
					return fmt.Errorf("NDP socket on %s for %s: %w", iface, v, err)
				}
				defer c.Close()
				na := &ndp.NeighborAdvertisement{Override: true, TargetAddress: v,
					Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: ifi.HardwareAddr}}}
				sends = append(sends, func() error { return c.WriteTo(na, nil, netip.IPv6LinkLocalAllNodes()) })
				continue
			}
			if arpc == nil {
				if arpc, err = arp.Dial(ifi); err != nil {
					return fmt.Errorf("ARP socket on %s: %w", iface, err)
				}
				defer arpc.Close()
			}
			pkt, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, v, ethernet.Broadcast, v)
			if err != nil {
				return err
			}
			c := arpc
			sends = append(sends, func() error { return c.WriteTo(pkt, ethernet.Broadcast) })
		}
		for i := range announcements {
			if i > 0 {
				time.Sleep(50 * time.Millisecond)
			}
			for j, send := range sends {
				if err := send(); err != nil {
					return fmt.Errorf("announcing %s on %s: %w", vips[j], iface, err)
				}
			}
		}
		return nil
	})
}
