package interop

import (
	"net"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/vxland/vxland/internal/testnet"
)

// TestTopoIPv6 runs the tunnel over an IPv6-only underlay against a kernel
// peer and carries IPv4 and IPv6 inside it. The TAP's default MTU accounts
// for the 70-byte IPv6 encapsulation.
func TestTopoIPv6(t *testing.T) {
	testnet.RequireRoot(t)
	requireIPv6(t)
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	underlay(t, a, b, "ul0", "2001:db8:1::1/64", "2001:db8:1::2/64")
	kdev := testnet.KernelVXLAN(t, b, testnet.VXLANOpts{Name: "vxlan0", VNI: 60, Remote: "2001:db8:1::1",
		Local: "2001:db8:1::2", Dev: "ul0", Addr: "203.0.113.2/24"})
	b.Addr(t, kdev, "2001:db8:2::2/64")
	d := startTopo(t, a, map[string]*testnet.NS{"vxt0": a}, "--tap", "vxt0", "--vni", "60",
		"--remote", "2001:db8:1::2", "--local", "2001:db8:1::1",
		"--addr", "203.0.113.1/24", "--addr", "2001:db8:2::1/64", "--up")

	if mtu := linkMTU(t, a, "vxt0"); mtu != 1430 {
		t.Errorf("TAP MTU %d, want 1430 (1500 less the 70-byte IPv6 encapsulation)", mtu)
	}

	// The tunnel really runs over IPv6: capture vxland's datagrams.
	cp := b.Capture(t, "ul0", "ip6 and udp dst port 4789")
	a.Ping(t, "2001:db8:2::2", 3)
	a.Ping(t, "203.0.113.2", 3)
	b.Ping(t, "2001:db8:2::1", 3)
	b.Ping(t, "203.0.113.1", 3)
	from := net.ParseIP("2001:db8:1::1")
	pkt := cp.Wait(5*time.Second, func(p gopacket.Packet) bool {
		ip6, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		return ok && ip6.SrcIP.Equal(from) && p.Layer(layers.LayerTypeVXLAN) != nil
	})
	if vx := pkt.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN); vx.VNI != 60 {
		t.Errorf("vxland's IPv6 datagram carries VNI %d, want 60", vx.VNI)
	}
	if udp := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP); udp.Checksum == 0 {
		t.Errorf("vxland sent an IPv6 datagram with a zero UDP checksum (RFC 8200 requires one unless udp6zerocsumtx)")
	}
	cp.Stop()
	testnet.TCPTransfer(t, a, b, "2001:db8:2::2", 4<<20)
	testnet.TCPTransfer(t, b, a, "2001:db8:2::1", 4<<20)
	testnet.TCPTransfer(t, a, b, "203.0.113.2", 4<<20)
	testnet.TCPTransfer(t, b, a, "203.0.113.1", 4<<20)

	kmac := macOf(t, b, kdev)
	if out := d.ctl(t, "fdb", "show", "dev", "vxt0"); !hasLine(out, kmac, "dst 2001:db8:1::2") {
		t.Errorf("vxland did not learn the kernel's MAC %s at 2001:db8:1::2:\n%s", kmac, out)
	}
	tapMAC := macOf(t, a, "vxt0")
	if out := b.Exec(t, "bridge", "fdb", "show", "dev", kdev); !hasLine(out, tapMAC, "dst 2001:db8:1::1") {
		t.Errorf("the kernel did not learn vxland's MAC %s at 2001:db8:1::1:\n%s", tapMAC, out)
	}
	d.stop(t)
}
