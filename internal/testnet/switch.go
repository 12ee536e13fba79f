package testnet

import (
	"fmt"
	"testing"
)

// Switch is an underlay LAN: a Linux bridge br0 in a namespace of its own,
// with hosts plugged into it by veth pairs.
type Switch struct {
	// NS is the switch's namespace; a server on the LAN (etcd) may take
	// an address on br0 there.
	NS *NS
}

// NewSwitch creates the switch and sets br0 up.
func NewSwitch(t testing.TB) *Switch {
	t.Helper()
	ns := NewNS(t)
	ns.Exec(t, "ip", "link", "add", "br0", "type", "bridge")
	ns.Exec(t, "ip", "link", "set", "br0", "up")
	return &Switch{NS: ns}
}

// Plug creates a host namespace joined to the switch by a veth pair: port
// PORT on br0, ifname in the host with cidr on it (which must pass
// CheckAddr).
func (sw *Switch) Plug(t testing.TB, port, ifname, cidr string) *NS {
	t.Helper()
	host := NewNS(t)
	Link(t, sw.NS, port, host, ifname)
	sw.NS.Exec(t, "ip", "link", "set", port, "master", "br0", "up")
	host.Addr(t, ifname, cidr)
	return host
}

// PlugN is Plug for host i of a LAN numbered 192.0.2.i/24: port e<i>,
// device ul0.
func (sw *Switch) PlugN(t testing.TB, i int) *NS {
	t.Helper()
	return sw.Plug(t, fmt.Sprintf("e%d", i), "ul0", fmt.Sprintf("192.0.2.%d/24", i))
}
