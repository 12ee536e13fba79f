package interop

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/vxland/vxland/internal/testnet"
)

// udpFlows sends count datagrams on each of flows UDP flows (distinct source
// ports) from ns to dst:port, each with IP TOS tos.
func udpFlows(t *testing.T, ns *testnet.NS, dst string, port, flows, count int, tos int) {
	t.Helper()
	err := ns.TryDo(func() error {
		for f := 0; f < flows; f++ {
			// Unconnected: ICMP port-unreachable replies must not fail writes.
			c, err := net.ListenUDP("udp4", nil)
			if err != nil {
				return err
			}
			rc, _ := c.SyscallConn()
			var serr error
			rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TOS, tos) })
			if serr != nil {
				c.Close()
				return serr
			}
			for i := 0; i < count; i++ {
				to := &net.UDPAddr{IP: net.ParseIP(dst), Port: port}
				if _, err := c.WriteToUDP([]byte(fmt.Sprintf("flow %d packet %d", f, i)), to); err != nil {
					c.Close()
					return err
				}
			}
			c.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// outerOf returns the outer IPv4, UDP and VXLAN layers and the inner IPv4
// and UDP layers of a captured packet, or ok=false.
func outerOf(p gopacket.Packet) (ip *layers.IPv4, udp *layers.UDP, vx *layers.VXLAN, inIP *layers.IPv4, inUDP *layers.UDP, ok bool) {
	ls := p.Layers()
	var ips []*layers.IPv4
	var udps []*layers.UDP
	for _, l := range ls {
		switch v := l.(type) {
		case *layers.IPv4:
			ips = append(ips, v)
		case *layers.UDP:
			udps = append(udps, v)
		case *layers.VXLAN:
			vx = v
		}
	}
	if vx == nil || len(ips) < 2 || len(udps) < 2 {
		return nil, nil, nil, nil, nil, false
	}
	return ips[0], udps[0], vx, ips[1], udps[1], true
}

// TestOuterHeaders captures vxland's datagrams on the receiving underlay
// and checks them field by field: VXLAN flags and VNI, destination port,
// source ports inside --srcport and varying with the inner flow (but stable
// within one), TTL, inherited DSCP and RFC 6040 ECN.
func TestOuterHeaders(t *testing.T) {
	testnet.RequireRoot(t)
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	underlay(t, a, b, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	testnet.KernelVXLAN(t, b, testnet.VXLANOpts{VNI: 5000, Remote: "192.0.2.1", Local: "192.0.2.2", Dev: "ul0", Addr: "203.0.113.2/24"})
	startVxland(t, a, "vxt0", "--vni", "5000", "--remote", "192.0.2.2", "--addr", "203.0.113.1/24", "--up",
		"--srcport", "49152-49168", "--ttl", "9", "--tos", "inherit")
	a.Ping(t, "203.0.113.2", 1) // resolve ARP first

	cp := b.Capture(t, "ul0", "udp dst port 4789")
	primeCapture(t, cp, func() { udpFlows(t, a, "203.0.113.2", 9996, 1, 1, 0) }, nil)
	const flows, per = 16, 3
	udpFlows(t, a, "203.0.113.2", 9999, flows, per, 0x28) // DSCP AF11, Not-ECT
	udpFlows(t, a, "203.0.113.2", 9998, 1, 1, 0x28|0x03)  // CE inner
	udpFlows(t, a, "203.0.113.2", 9997, 1, 1, 0x28|0x01)  // ECT(1) inner
	want := flows*per + 2
	tunnelled := func(pkts []gopacket.Packet) int {
		n := 0
		for _, p := range pkts {
			if _, _, _, _, in, ok := outerOf(p); ok && in.DstPort >= 9997 && in.DstPort <= 9999 {
				n++
			}
		}
		return n
	}
	testnet.Eventually(t, 5*time.Second, func() error {
		if n := tunnelled(cp.Packets()); n < want {
			return fmt.Errorf("captured %d of %d tunnelled datagrams; tcpdump: %s", n, want, cp.Stderr())
		}
		return nil
	})
	pkts := cp.Stop()

	portsOfFlow := map[uint16]map[layers.UDPPort]bool{} // inner sport -> outer sports
	seen := 0
	for _, p := range pkts {
		ip, udp, vx, inIP, inUDP, ok := outerOf(p)
		if !ok || inUDP.DstPort < 9997 || inUDP.DstPort > 9999 {
			continue
		}
		seen++
		if !vx.ValidIDFlag || vx.VNI != 5000 {
			t.Errorf("VXLAN header: I flag %v VNI %d, want true 5000", vx.ValidIDFlag, vx.VNI)
		}
		if f := p.Data()[14+20+8]; f != 0x08 {
			t.Errorf("VXLAN flags byte %#x, want 0x08", f)
		}
		if udp.DstPort != 4789 {
			t.Errorf("outer destination port %d, want 4789", udp.DstPort)
		}
		if udp.SrcPort < 49152 || udp.SrcPort >= 49168 {
			t.Errorf("outer source port %d outside --srcport 49152-49168", udp.SrcPort)
		}
		if ip.TTL != 9 {
			t.Errorf("outer TTL %d, want 9", ip.TTL)
		}
		if ip.Flags&layers.IPv4DontFragment != 0 {
			t.Errorf("outer DF set; the kernel driver leaves it unset by default")
		}
		var wantTOS uint8
		switch inIP.TOS & 3 {
		case 0:
			wantTOS = 0x28 // DSCP inherited, Not-ECT stays Not-ECT
		case 1:
			wantTOS = 0x29 // ECT(1) copied
		case 3:
			wantTOS = 0x2a // CE leaves as ECT(0)
		}
		if ip.TOS != wantTOS {
			t.Errorf("inner TOS %#x: outer TOS %#x, want %#x", inIP.TOS, ip.TOS, wantTOS)
		}
		if inUDP.DstPort == 9999 {
			if portsOfFlow[uint16(inUDP.SrcPort)] == nil {
				portsOfFlow[uint16(inUDP.SrcPort)] = map[layers.UDPPort]bool{}
			}
			portsOfFlow[uint16(inUDP.SrcPort)][udp.SrcPort] = true
		}
	}
	if seen < want {
		t.Fatalf("captured %d of %d tunnelled datagrams", seen, want)
	}
	distinct := map[layers.UDPPort]bool{}
	for flow, ports := range portsOfFlow {
		if len(ports) != 1 {
			t.Errorf("inner flow from port %d left with several outer source ports %v", flow, ports)
		}
		for p := range ports {
			distinct[p] = true
		}
	}
	if len(portsOfFlow) != flows {
		t.Errorf("saw %d inner flows, want %d", len(portsOfFlow), flows)
	}
	if len(distinct) < 2 {
		t.Errorf("%d inner flows all used outer source port(s) %v: the flow hash does not spread them", flows, distinct)
	}
}

// TestTTLInherit checks --ttl inherit on the wire: the outer TTL is the
// inner packet's, and 64 for a frame that is not IP.
func TestTTLInherit(t *testing.T) {
	testnet.RequireRoot(t)
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	underlay(t, a, b, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	testnet.KernelVXLAN(t, b, testnet.VXLANOpts{VNI: 40, Remote: "192.0.2.1", Local: "192.0.2.2", Dev: "ul0", Addr: "203.0.113.2/24"})
	startVxland(t, a, "vxt0", "--vni", "40", "--remote", "192.0.2.2", "--addr", "203.0.113.1/24", "--up", "--ttl", "inherit")
	a.Ping(t, "203.0.113.2", 1)

	cp := b.Capture(t, "ul0", "udp dst port 4789")
	primeCapture(t, cp, func() { udpFlows(t, a, "203.0.113.2", 9996, 1, 1, 0) }, nil)
	err := a.TryDo(func() error {
		c, err := net.ListenUDP("udp4", nil)
		if err != nil {
			return err
		}
		defer c.Close()
		rc, _ := c.SyscallConn()
		var serr error
		rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, 33) })
		if serr != nil {
			return serr
		}
		_, err = c.WriteToUDP([]byte("ttl33"), &net.UDPAddr{IP: net.ParseIP("203.0.113.2"), Port: 9995})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	marker := []byte("not-ip-ttl")
	sendFrames(t, a, "vxt0", [][]byte{append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x42, 0x88, 0xb5}, marker...)})

	var ipTTL, otherTTL uint8
	testnet.Eventually(t, 5*time.Second, func() error {
		for _, p := range cp.Packets() {
			ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			vx, _ := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
			if ip == nil || vx == nil || !ip.SrcIP.Equal(net.ParseIP("192.0.2.1")) {
				continue // only vxland's datagrams (b's ICMP errors quote the payload)
			}
			switch {
			case bytes.Contains(vx.Payload, []byte("ttl33")):
				ipTTL = ip.TTL
			case bytes.Contains(vx.Payload, marker):
				otherTTL = ip.TTL
			}
		}
		if ipTTL == 0 || otherTTL == 0 {
			return fmt.Errorf("captured TTLs so far: IP %d, non-IP %d", ipTTL, otherTTL)
		}
		return nil
	})
	if ipTTL != 33 {
		t.Errorf("inner TTL 33 left with outer TTL %d", ipTTL)
	}
	if otherTTL != 64 {
		t.Errorf("non-IP frame left with outer TTL %d, want 64", otherTTL)
	}
}
