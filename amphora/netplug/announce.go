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

// garps is how many gratuitous ARPs announce a VIP, a little apart so
// that one lost frame does not leave a switch or router with the old MAC.
const garps = 3

// announce sends gratuitous ARP for the IPv4 VIPs and unsolicited
// neighbour advertisements for the IPv6 ones on iface in the namespace,
// so neighbours update their caches at once (a re-plugged or failed-over
// VIP has a new MAC).
func (p *Plugger) announce(iface string, vips []netip.Addr) error {
	var v4, v6 []netip.Addr
	for _, v := range vips {
		if v.Is4() {
			v4 = append(v4, v)
		} else {
			v6 = append(v6, v)
		}
	}
	if err := p.advertise(iface, v6); err != nil {
		return err
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

// advertise sends unsolicited, overriding neighbour advertisements (RFC
// 4861 §7.2.6) for vips to all nodes, each from the VIP itself (added
// without DAD, so usable at once).
func (p *Plugger) advertise(iface string, vips []netip.Addr) error {
	if len(vips) == 0 {
		return nil
	}
	var aerr error
	err := p.inNamespace(func() {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			aerr = err
			return
		}
		for _, v := range vips {
			c, _, err := ndp.Listen(ifi, ndp.Addr(v.String()))
			if err != nil {
				aerr = fmt.Errorf("NDP socket on %s for %s: %w", iface, v, err)
				return
			}
			na := &ndp.NeighborAdvertisement{Override: true, TargetAddress: v,
				Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: ifi.HardwareAddr}}}
			for i := range garps {
				if i > 0 {
					time.Sleep(50 * time.Millisecond)
				}
				if err = c.WriteTo(na, nil, netip.IPv6LinkLocalAllNodes()); err != nil {
					break
				}
			}
			c.Close()
			if err != nil {
				aerr = fmt.Errorf("neighbour advertisement for %s on %s: %w", v, iface, err)
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return aerr
}
