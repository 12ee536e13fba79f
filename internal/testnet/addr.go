package testnet

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// docPrefixes are the only unicast ranges test hosts may use (RFC 5737, RFC 3849).
var docPrefixes = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// adminMulticast4 is the administratively scoped IPv4 multicast range (RFC 2365),
// allowed for vxlan groups inside namespaces.
var adminMulticast4 = netip.MustParsePrefix("239.0.0.0/8")

// CheckAddr reports whether addr, an IP address or a prefix in CIDR notation, may be
// used by a test host: it must lie in 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24
// or 2001:db8::/32, or be multicast in 239.0.0.0/8 or in an IPv6 scope narrower than
// global (ff01::/16 to ff08::/16). For a prefix, the whole prefix must lie inside
// one of these ranges (192.0.2.1/16 is refused: its route would cover other hosts).
func CheckAddr(addr string) error {
	s := strings.TrimSpace(addr)
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		p, err = netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("testnet: address %q: %w", addr, err)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("testnet: address %q: %w", addr, err)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	a := p.Addr().Unmap()
	if a.Zone() != "" {
		return fmt.Errorf("testnet: address %q: zoned addresses are not allowed", addr)
	}
	p = netip.PrefixFrom(a, p.Bits()-(p.Addr().BitLen()-a.BitLen()))
	allowed := docPrefixes
	switch {
	case a.Is4() && a.IsMulticast():
		allowed = []netip.Prefix{adminMulticast4}
	case a.Is6() && a.IsMulticast():
		scope := a.As16()[1] & 0x0f
		if scope >= 1 && scope <= 8 {
			allowed = []netip.Prefix{netip.PrefixFrom(a, 16).Masked()}
		} else {
			allowed = nil
		}
	}
	for _, d := range allowed {
		if d.Contains(a) && p.Bits() >= d.Bits() {
			return nil
		}
	}
	return fmt.Errorf("testnet: address %q is outside the documentation ranges "+
		"(192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32; multicast "+
		"239.0.0.0/8 or scoped IPv6): tests must never use or target other addresses", addr)
}

// RequireDocAddr fails the test at once unless every address passes CheckAddr.
// Empty strings are ignored, so optional fields can be passed as they are.
func RequireDocAddr(t testing.TB, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if a == "" {
			continue
		}
		if err := CheckAddr(a); err != nil {
			t.Fatal(err)
		}
	}
}
