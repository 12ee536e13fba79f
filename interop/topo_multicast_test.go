package interop

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/vxland/vxland/internal/testnet"
)

// mcastCase is one address family of TestTopoMulticast.
type mcastCase struct {
	name     string
	group    string
	underlay [3]string // CIDRs of hosts a (vxland), b and c (kernel)
	maddr    string    // how `ip maddr show` prints the group
}

// TestTopoMulticast puts vxland and two kernel vxlan members of one
// multicast group on a shared L2 underlay (a namespace holding a Linux
// bridge with multicast snooping, veths to the three hosts). vxland must
// join the group on --dev (IGMP, or MLD for IPv6), flood to the group with
// TTL 1, learn the members' unicast addresses from their traffic and then
// talk to each of them by unicast.
func TestTopoMulticast(t *testing.T) {
	testnet.RequireRoot(t)
	for _, tc := range []mcastCase{
		{name: "ipv4", group: "239.1.1.1", maddr: "inet  239.1.1.1",
			underlay: [3]string{"192.0.2.1/24", "192.0.2.2/24", "192.0.2.3/24"}},
		{name: "ipv6", group: "ff05::1:239", maddr: "inet6 ff05::1:239",
			underlay: [3]string{"2001:db8:1::1/64", "2001:db8:1::2/64", "2001:db8:1::3/64"}},
	} {
		t.Run(tc.name, func(t *testing.T) { testMulticast(t, tc) })
	}

	t.Run("flag-errors", func(t *testing.T) {
		a := testnet.NewNS(t)
		b := testnet.NewNS(t)
		underlay(t, a, b, "ul0", "192.0.2.1/24", "192.0.2.2/24")
		expectSetupError(t, a, []string{"group", "remote"},
			"--vni", "40", "--tap", "vxt0", "--group", "239.1.1.1", "--dev", "ul0", "--remote", "192.0.2.2")
		expectSetupError(t, a, []string{"group", "remote"},
			"--vni", "40", "--tap", "vxt0", "--remote", "192.0.2.2", "--group", "239.1.1.1", "--dev", "ul0")
		// The group is joined on a device: without --dev there is none.
		expectSetupError(t, a, []string{"dev"}, "--vni", "40", "--tap", "vxt0", "--group", "239.1.1.1")
		expectSetupError(t, a, []string{"nodev0"}, "--vni", "40", "--tap", "vxt0", "--group", "239.1.1.1", "--dev", "nodev0")
		if linkExists(a, "vxt0") {
			t.Error("a refused vxland left its TAP vxt0 behind")
		}
	})
}

func testMulticast(t *testing.T, tc mcastCase) {
	v6 := tc.name == "ipv6"
	if v6 {
		requireIPv6(t)
	}
	a, b, c := testnet.NewNS(t), testnet.NewNS(t), testnet.NewNS(t)
	hub := testnet.NewNS(t)
	requireBridge(t, hub)
	hosts := []*testnet.NS{a, b, c}
	if v6 {
		// MLD reports from a tentative link-local address are ignored by
		// the bridge's snooping: skip DAD on the underlay links.
		for _, ns := range append(hosts, hub) {
			ns.SetSysctl(t, "net.ipv6.conf.default.accept_dad", "0")
		}
	}
	newBridge(t, hub, "br0")
	for i, h := range hosts {
		port := fmt.Sprintf("p%d", i)
		testnet.Link(t, hub, port, h, "ul0")
		hub.Exec(t, "ip", "link", "set", port, "master", "br0")
		h.Addr(t, "ul0", tc.underlay[i])
	}
	ip := func(i int) string { return stripPrefix(tc.underlay[i]) }
	for i, h := range []*testnet.NS{b, c} {
		testnet.KernelVXLAN(t, h, testnet.VXLANOpts{Name: "vxlan0", VNI: 40, Group: tc.group, Dev: "ul0",
			Addr: fmt.Sprintf("203.0.113.%d/24", i+2)})
	}
	d := startTopo(t, a, map[string]*testnet.NS{"vxt0": a}, "--tap", "vxt0", "--vni", "40",
		"--group", tc.group, "--dev", "ul0", "--addr", "203.0.113.1/24", "--up")

	// The membership is on ul0 of vxland's namespace (the kernel members
	// are in other namespaces), and the IGMP/MLD report reached the wire:
	// the snooping bridge recorded port p0 as a member.
	if out := a.Exec(t, "ip", "maddr", "show", "dev", "ul0"); !hasLine(out, tc.maddr) {
		t.Errorf("vxland did not join %s on ul0; ip maddr show dev ul0:\n%s", tc.group, out)
	}
	testnet.Eventually(t, 10*time.Second, func() error {
		out, err := hub.Try("bridge", "mdb", "show")
		if err != nil {
			return err
		}
		if !hasLine(out, "port p0 ", "grp "+tc.group+" ") {
			return fmt.Errorf("the underlay bridge saw no membership report for %s from vxland's port p0:\n%s", tc.group, out)
		}
		return nil
	})
	if mtu := linkMTU(t, a, "vxt0"); mtu != 1500-overhead(v6) {
		t.Errorf("TAP MTU %d, want %d (ul0's 1500 less the VXLAN overhead)", mtu, 1500-overhead(v6))
	}

	// Both directions with each member; the first packets flood to the
	// group, the answers teach each side the other's unicast address.
	a.Ping(t, "203.0.113.2", 2)
	a.Ping(t, "203.0.113.3", 2)
	b.Ping(t, "203.0.113.1", 2)
	c.Ping(t, "203.0.113.1", 2)
	fdbOut := d.ctl(t, "fdb", "show", "dev", "vxt0")
	for i, h := range []*testnet.NS{b, c} {
		if m := macOf(t, h, "vxlan0"); !hasLine(fdbOut, m, "dst "+ip(i+1)) {
			t.Errorf("vxland did not learn member %s's MAC %s at %s:\n%s", h, m, ip(i+1), fdbOut)
		}
	}
	if !hasLine(fdbOut, "00:00:00:00:00:00", "dst "+tc.group) {
		t.Errorf("--group is not the all-zeros flood destination:\n%s", fdbOut)
	}
	tapMAC := macOf(t, a, "vxt0")
	for _, h := range []*testnet.NS{b, c} {
		if out := h.Exec(t, "bridge", "fdb", "show", "dev", "vxlan0"); !hasLine(out, tapMAC, "dst "+ip(0)) {
			t.Errorf("kernel member %s did not learn vxland's MAC %s at %s:\n%s", h, tapMAC, ip(0), out)
		}
	}

	// Known unicast goes to the member alone: c sees none of a TCP
	// exchange between vxland and b.
	capC := c.Capture(t, "ul0", "udp dst port 4789")
	primeCapture(t, capC, func() { a.TryPing("203.0.113.3", 1) }, nil)
	testnet.TCPTransfer(t, a, b, "203.0.113.2", 1<<20)
	testnet.TCPTransfer(t, b, a, "203.0.113.1", 1<<20)
	if n := countInnerTCP(capC.Stop(), "203.0.113.2"); n != 0 {
		t.Errorf("member c received %d tunnelled TCP segments of the exchange between vxland and b: known unicast was flooded", n)
	}
	testnet.TCPTransfer(t, a, c, "203.0.113.3", 1<<20)
	testnet.TCPTransfer(t, c, a, "203.0.113.1", 1<<20)

	// Broadcast, multicast and unknown unicast go to the group once, with
	// TTL (hop limit) 1, and both members get each frame exactly once.
	capB := b.Capture(t, "ul0", "udp dst port 4789")
	capC = c.Capture(t, "ul0", "udp dst port 4789")
	primeCapture(t, capB, func() { a.TryPing("203.0.113.2", 1) }, nil)
	primeCapture(t, capC, func() { a.TryPing("203.0.113.3", 1) }, nil)
	const n = 4
	src := []byte{0x02, 0, 0, 0, 0, 0x42}
	kinds := []struct {
		what   string
		dst    []byte
		marker []byte
	}{
		{"broadcast", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, []byte("vxland-group-bcast-" + tc.name)},
		{"multicast", []byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0x99}, []byte("vxland-group-mcast-" + tc.name)},
		{"unknown unicast", []byte{0x02, 0, 0, 0, 0, 0x99}, []byte("vxland-group-unknown-" + tc.name)},
	}
	// Each kind ends with a sentinel frame of its flow (same addresses:
	// same transmit socket, same order), the barrier for its duplicates.
	for _, k := range kinds {
		sentinel := []byte("vxland-sentinel-" + k.what + "-" + tc.name) // not containing a marker
		sendFrames(t, a, "vxt0", append(framesTo(k.dst, src, k.marker, n), framesTo(k.dst, src, sentinel, 1)...))
		awaitSentinel(t, sentinel, capB, capC)
	}
	group := net.ParseIP(tc.group)
	for name, cp := range map[string]*testnet.Capture{"b": capB, "c": capC} {
		pkts := cp.Stop()
		for _, k := range kinds {
			if got := countVXLAN(pkts, k.marker); got != n {
				t.Errorf("member %s got %d copies of %d %s frames, want exactly %d", name, got, n, k.what, n)
			}
			for _, p := range pkts {
				vx, ok := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
				if !ok || !bytes.Contains(vx.Payload, k.marker) {
					continue
				}
				dst, ttl := outerDstTTL(p)
				if !dst.Equal(group) {
					t.Errorf("member %s: flooded %s frame sent to %v, want the group %s", name, k.what, dst, tc.group)
				}
				if ttl != 1 {
					t.Errorf("member %s: flooded %s frame has outer TTL/hop limit %d, want 1 (the multicast default)", name, k.what, ttl)
				}
				if vx.VNI != 40 {
					t.Errorf("member %s: flooded %s frame has VNI %d, want 40", name, k.what, vx.VNI)
				}
			}
		}
	}

	d.stop(t)
	if out := a.Exec(t, "ip", "maddr", "show", "dev", "ul0"); hasLine(out, tc.maddr) {
		t.Errorf("ul0 is still a member of %s after vxland exited:\n%s", tc.group, out)
	}
}

// overhead is the VXLAN encapsulation overhead over IPv4 or IPv6.
func overhead(v6 bool) int {
	if v6 {
		return 70
	}
	return 50
}

// stripPrefix returns the address of a CIDR.
func stripPrefix(cidr string) string {
	for i := range cidr {
		if cidr[i] == '/' {
			return cidr[:i]
		}
	}
	return cidr
}

// outerDstTTL returns the outer destination address and TTL (or hop
// limit) of a captured datagram.
func outerDstTTL(p gopacket.Packet) (net.IP, int) {
	for _, l := range p.Layers() {
		switch v := l.(type) {
		case *layers.IPv4:
			return v.DstIP, int(v.TTL)
		case *layers.IPv6:
			return v.DstIP, int(v.HopLimit)
		}
	}
	return nil, -1
}

// countInnerTCP counts captured VXLAN datagrams that carry an inner TCP
// segment to or from the IPv4 address addr.
func countInnerTCP(pkts []gopacket.Packet, addr string) int {
	want := net.ParseIP(addr)
	n := 0
	for _, p := range pkts {
		vx, ok := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
		if !ok {
			continue
		}
		inner := gopacket.NewPacket(vx.Payload, layers.LayerTypeEthernet, gopacket.Default)
		ip4, ok := inner.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ok || ip4.Protocol != layers.IPProtocolTCP {
			continue
		}
		if ip4.DstIP.Equal(want) || ip4.SrcIP.Equal(want) {
			n++
		}
	}
	return n
}
