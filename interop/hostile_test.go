package interop

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/vxland/vxland/internal/testnet"
)

// innerUDP builds an Ethernet/IPv4/UDP frame from src to dst MAC with the
// given IP TOS byte and payload.
func innerUDP(t *testing.T, dst, src net.HardwareAddr, tos uint8, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, TOS: tos, Protocol: layers.IPProtocolUDP,
		SrcIP: net.ParseIP("203.0.113.9").To4(), DstIP: net.ParseIP("203.0.113.1").To4()}
	udp := &layers.UDP{SrcPort: 5555, DstPort: 7777}
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// vxlanHeader builds a header with the given flags byte, VNI and last byte.
func vxlanHeader(flags byte, vni uint32, last byte) []byte {
	return []byte{flags, 0, 0, 0, byte(vni >> 16), byte(vni >> 8), byte(vni), last}
}

// sendDatagrams sends raw UDP payloads from ns to dst:4789 with outer TOS.
func sendDatagrams(t *testing.T, ns *testnet.NS, dst string, tos int, payloads ...[]byte) {
	t.Helper()
	err := ns.TryDo(func() error {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(dst), Port: 4789})
		if err != nil {
			return err
		}
		defer c.Close()
		rc, _ := c.SyscallConn()
		var serr error
		rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TOS, tos) })
		if serr != nil {
			return serr
		}
		for _, p := range payloads {
			if _, err := c.Write(p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestHostileInput sends malformed and looped datagrams: each is dropped
// and counted under its reason, nothing reaches the TAP, and the daemon
// keeps forwarding.
func TestHostileInput(t *testing.T) {
	testnet.RequireRoot(t)
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	underlay(t, a, b, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	testnet.KernelVXLAN(t, b, testnet.VXLANOpts{VNI: 40, Remote: "192.0.2.1", Local: "192.0.2.2", Dev: "ul0", Addr: "203.0.113.2/24"})
	d := startVxland(t, a, "vxt0", "--vni", "40", "--remote", "192.0.2.2", "--addr", "203.0.113.1/24", "--up")
	own, _ := net.ParseMAC(macOf(t, a, "vxt0"))
	stranger, _ := net.ParseMAC("02:00:00:00:00:99")
	group, _ := net.ParseMAC("01:00:5e:00:00:99")
	marker := []byte("hostile-marker")
	sentinel := []byte("hostile-sentinel")
	good := innerUDP(t, own, stranger, 0, marker)

	before := d.stats(t)
	tap := a.Capture(t, "vxt0", "")
	primeCapture(t, tap, func() { b.TryPing("203.0.113.1", 1) },
		func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeICMPv4) != nil })
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	sendDatagrams(t, b, "192.0.2.1", 0,
		[]byte{0x08, 0, 0},                                                     // shorter than a header
		cat(vxlanHeader(0x08, 40, 0), good[:10]),                               // inner frame shorter than Ethernet
		cat(vxlanHeader(0x08, 40, 0), good[:14+10]),                            // inner IPv4 header cut short
		cat(vxlanHeader(0x00, 40, 0), good),                                    // I flag clear
		cat(vxlanHeader(0x0c, 40, 0), good),                                    // reserved flag bit
		cat(vxlanHeader(0x08, 40, 1), good),                                    // reserved last byte
		cat(vxlanHeader(0x08, 41, 0), good),                                    // VNI not served
		cat(vxlanHeader(0x08, 40, 0), innerUDP(t, own, own, 0, marker)),        // our own source MAC
		cat(vxlanHeader(0x08, 40, 0), innerUDP(t, own, group, 0, marker)),      // a group source MAC
		cat(vxlanHeader(0x08, 40, 0), innerUDP(t, own, stranger, 0, sentinel)), // delivered: the barrier
	)
	// The socket's datagrams are handled in order: once the sentinel is on
	// the TAP, every datagram before it has been counted, and any that was
	// wrongly delivered has been written to the TAP before it.
	awaitSentinel(t, sentinel, tap)
	want := map[string]uint64{"rx_short": 2, "rx_no_i_flag": 1, "rx_reserved_bits": 2, "rx_unknown_vni": 1, "rx_own_mac": 1,
		"rx_invalid_source_mac": 1, "rx_inner_short": 1}
	after := d.stats(t)
	for k, v := range want {
		if after[k]-before[k] != v {
			t.Errorf("counter %s rose by %d, want %d (all: %v)", k, after[k]-before[k], v, after)
		}
	}
	for _, p := range tap.Stop() {
		if bytes.Contains(p.Data(), marker) {
			t.Errorf("a dropped datagram reached the TAP: %x", p.Data())
		}
	}
	b.Ping(t, "203.0.113.1", 2)
}

// TestECNDecap sends datagrams whose outer header is CE-marked: an ECT
// inner packet comes out CE, a Not-ECT one is dropped (RFC 6040).
func TestECNDecap(t *testing.T) {
	testnet.RequireRoot(t)
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	underlay(t, a, b, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	d := startVxland(t, a, "vxt0", "--vni", "40", "--remote", "192.0.2.2", "--addr", "203.0.113.1/24", "--up")
	own, _ := net.ParseMAC(macOf(t, a, "vxt0"))
	stranger, _ := net.ParseMAC("02:00:00:00:00:99")

	tap := a.Capture(t, "vxt0", "udp port 7777")
	primeCapture(t, tap, func() {
		sendDatagrams(t, b, "192.0.2.1", 0, append(vxlanHeader(0x08, 40, 0), innerUDP(t, own, stranger, 0, []byte("prime"))...))
	}, func(p gopacket.Packet) bool { return bytes.Contains(p.Data(), []byte("prime")) })
	before := d.stats(t)
	sentinel := []byte("ecn-sentinel")
	sendDatagrams(t, b, "192.0.2.1", 0x03, // outer CE
		append(vxlanHeader(0x08, 40, 0), innerUDP(t, own, stranger, 0x02, []byte("ect0"))...),
		append(vxlanHeader(0x08, 40, 0), innerUDP(t, own, stranger, 0x00, []byte("notect"))...),
		append(vxlanHeader(0x08, 40, 0), innerUDP(t, own, stranger, 0x02, sentinel)...), // the barrier
	)
	p := tap.Wait(3*time.Second, func(p gopacket.Packet) bool { return bytes.Contains(p.Data(), []byte("ect0")) })
	if p == nil {
		t.Fatal("the ECT(0) packet never reached the TAP")
	}
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if ip == nil {
		t.Fatalf("the packet on the TAP is not IPv4: %v", p)
	}
	if ip.TOS&3 != 3 {
		t.Errorf("inner packet after outer CE: TOS %#x, want CE (ECN bits 11)", ip.TOS)
	}
	// The IPv4 header checksum must still be valid after the rewrite.
	hdr := append([]byte(nil), ip.Contents...)
	if sum := ipChecksum(hdr); sum != 0xffff && sum != 0 {
		t.Errorf("inner IPv4 header checksum invalid after CE marking: %x", hdr)
	}
	// Datagrams are handled in order: with the sentinel on the TAP, the
	// Not-ECT one before it has been dropped and counted, or delivered.
	awaitSentinel(t, sentinel, tap)
	for _, q := range tap.Stop() {
		if bytes.Contains(q.Data(), []byte("notect")) {
			t.Error("Not-ECT packet under an outer CE was delivered; RFC 6040 says drop")
		}
	}
	if got := d.stats(t)["rx_ecn_drop"] - before["rx_ecn_drop"]; got != 1 {
		t.Errorf("rx_ecn_drop rose by %d, want 1", got)
	}
}

// ipChecksum sums a header in ones' complement; a valid header sums to 0xffff.
func ipChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}
