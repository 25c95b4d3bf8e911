package config

import (
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
)

// Granularity is how much of a client address SOURCE_IP persistence of a
// UDP pool looks at: the prefix lengths kept of IPv4 and IPv6 addresses.
type Granularity struct{ V4, V6 int }

// ParseGranularity reads persistence_granularity as keepalived does: an
// IPv4 netmask ("255.255.255.0": IPv6 clients are told apart fully) or a
// prefix length ("64": IPv4 clients by at most 32 bits). Empty is Octavia's
// default, 255.255.255.255.
func ParseGranularity(s string) (Granularity, error) {
	if s == "" {
		return Granularity{V4: 32, V6: 128}, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 128 {
			return Granularity{}, fmt.Errorf("prefix length %d is not between 0 and 128", n)
		}
		return Granularity{V4: min(n, 32), V6: n}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return Granularity{}, fmt.Errorf("%q is neither an IPv4 netmask nor a prefix length", s)
	}
	b := a.As4()
	m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	ones := bits.LeadingZeros32(^m)
	if ones < 32 && m<<ones != 0 {
		return Granularity{}, fmt.Errorf("netmask %s is not contiguous", s)
	}
	return Granularity{V4: ones, V6: 128}, nil
}
