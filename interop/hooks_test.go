package interop

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/vxland/vxland/checksum"
	"github.com/vxland/vxland/internal/testnet"
)

// proxyTopo is the guides' proxy topology: two hosts, each with a bridge
// br0 holding one container; host A's bridge also holds vxland's TAP,
// host B's a kernel vxlan device with "proxy nolearning". Neither VTEP
// has an all-zeros entry: nothing is flooded.
type proxyTopo struct {
	hostA, hostB *testnet.NS
	cA, cB       *testnet.NS
	macA, macB   string
	d            *daemon
	kdev         string
}

const (
	ctrA4, ctrB4 = "203.0.113.11", "203.0.113.21"
	ctrA6, ctrB6 = "2001:db8:1::11", "2001:db8:1::21"
)

// newProxyTopo builds the topology; vxland gets args besides its basics.
// The kernel side knows container A (fdb and neighbour entries on its
// vxlan device); what vxland knows is up to the test.
func newProxyTopo(t *testing.T, args ...string) *proxyTopo {
	t.Helper()
	testnet.RequireRoot(t)
	requireIPv6(t)
	p := &proxyTopo{hostA: testnet.NewNS(t), hostB: testnet.NewNS(t)}
	requireBridge(t, p.hostA)
	underlay(t, p.hostA, p.hostB, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	newBridge(t, p.hostA, "br0")
	newBridge(t, p.hostB, "br0")
	p.cA = container(t, p.hostA, "br0", "veth-a", 1450, ctrA4+"/24")
	p.cB = container(t, p.hostB, "br0", "veth-b", 1450, ctrB4+"/24")
	p.cA.Exec(t, "ip", "-6", "addr", "add", ctrA6+"/64", "dev", "eth0", "nodad")
	p.cB.Exec(t, "ip", "-6", "addr", "add", ctrB6+"/64", "dev", "eth0", "nodad")
	p.macA, p.macB = macOf(t, p.cA, "eth0"), macOf(t, p.cB, "eth0")

	p.kdev = testnet.KernelVXLAN(t, p.hostB, testnet.VXLANOpts{Name: "vxlan0", VNI: 42,
		Local: "192.0.2.2", Dev: "ul0", NoLearning: true, Extra: []string{"proxy"}})
	p.hostB.Exec(t, "ip", "link", "set", p.kdev, "master", "br0")
	p.hostB.Exec(t, "bridge", "fdb", "add", p.macA, "dev", p.kdev, "dst", "192.0.2.1", "self", "permanent")
	p.hostB.Exec(t, "ip", "neigh", "add", ctrA4, "lladdr", p.macA, "dev", p.kdev, "nud", "permanent")
	p.hostB.Exec(t, "ip", "-6", "neigh", "add", ctrA6, "lladdr", p.macA, "dev", p.kdev, "nud", "permanent")

	p.d = startTopo(t, p.hostA, map[string]*testnet.NS{"vxt0": p.hostA}, append([]string{
		"--tap", "vxt0", "--vni", "42", "--local", "192.0.2.1", "--dev", "ul0",
		"--learning=false", "--master", "br0", "--up"}, args...)...)
	return p
}

// teachVxland gives vxland what the kernel side has for container B:
// the forwarding entry, the IPv4 neighbour as the host's own entry on
// the TAP (as the guides write it, for the kernel's vxlan device) and the
// IPv6 neighbour through vxlanctl.
func (p *proxyTopo) teachVxland(t *testing.T) {
	t.Helper()
	p.d.ctl(t, "fdb", "add", p.macB, "dev", "vxt0", "dst", "192.0.2.2")
	p.hostA.Exec(t, "ip", "neigh", "add", ctrB4, "lladdr", p.macB, "dev", "vxt0", "nud", "permanent")
	p.d.ctl(t, "neigh", "add", ctrB6, "lladdr", p.macB, "dev", "vxt0")
	// The host's entry reaches vxland through netlink: wait for it there.
	testnet.Eventually(t, 5*time.Second, func() error {
		out, err := p.d.ctlTry("neigh", "show", "dev", "vxt0")
		if err != nil {
			return err
		}
		if !hasLine(out, ctrB4, "lladdr "+p.macB, "PERMANENT", "proto host") {
			return errorf("vxland has not followed the host's neighbour entry yet:\n%s", out)
		}
		return nil
	})
}

// TestProxyKernel: with proxy on both sides and static entries, the
// containers ping each other over IPv4 and IPv6, no ARP or Neighbor
// Discovery crosses the underlay, and the replies vxland builds are the
// kernel's byte for byte (with the two containers' roles swapped).
func TestProxyKernel(t *testing.T) {
	p := newProxyTopo(t, "--proxy")
	p.teachVxland(t)
	ul := p.hostB.Capture(t, "ul0", "udp port 4789")
	capA := p.cA.Capture(t, "eth0", "arp or icmp6")
	capB := p.cB.Capture(t, "eth0", "arp or icmp6")

	// Each container resolves the other through its own VTEP's proxy:
	// vxland answers A, the kernel answers B.
	resolve := func(c *testnet.NS, cp *testnet.Capture, ip string, match func(gopacket.Packet) bool) {
		primeCapture(t, cp, func() {
			c.Try("ip", "neigh", "flush", "dev", "eth0")
			c.TryPing(ip, 1)
		}, match)
	}
	resolve(p.cA, capA, ctrB4, isARPReplyFrom(ctrB4))
	resolve(p.cB, capB, ctrA4, isARPReplyFrom(ctrA4))
	resolve(p.cA, capA, ctrB6, isNAFor(ctrB6))
	resolve(p.cB, capB, ctrA6, isNAFor(ctrA6))
	p.cA.Ping(t, ctrB4, 3)
	p.cB.Ping(t, ctrA4, 3)
	p.cA.Ping(t, ctrB6, 3)
	p.cB.Ping(t, ctrA6, 3)

	swap := [][2][]byte{
		{mustMAC(t, p.macA), mustMAC(t, p.macB)},
		{net.ParseIP(ctrA4).To4(), net.ParseIP(ctrB4).To4()},
		{net.ParseIP(ctrA6).To16(), net.ParseIP(ctrB6).To16()},
	}
	ours := firstData(t, capA.Packets(), isARPReplyFrom(ctrB4))
	kernels := firstData(t, capB.Packets(), isARPReplyFrom(ctrA4))
	if want := swapAll(kernels, swap); !bytes.Equal(ours, want) {
		t.Errorf("vxland's ARP reply\n% x\nthe kernel's, roles swapped\n% x", ours, want)
	}
	ours = firstData(t, capA.Packets(), isNAFor(ctrB6))
	kernels = firstData(t, capB.Packets(), isNAFor(ctrA6))
	want := swapAll(kernels, swap)
	fixICMPv6Checksum(want)
	if !bytes.Equal(ours, want) {
		t.Errorf("vxland's neighbor advertisement\n% x\nthe kernel's, roles swapped\n% x", ours, want)
	}
	if !validICMPv6(ours) {
		t.Error("vxland's neighbor advertisement has a bad checksum")
	}

	// The underlay carried the pings, and no ARP or neighbour discovery.
	pkts := ul.Stop()
	echoes := 0
	for _, pk := range pkts {
		inner := innerFrame(pk)
		if inner == nil {
			continue
		}
		switch {
		case inner.Layer(layers.LayerTypeARP) != nil:
			t.Errorf("ARP inside a VXLAN datagram: %v", inner)
		case isND(inner):
			t.Errorf("neighbour discovery inside a VXLAN datagram: %v", inner)
		case inner.Layer(layers.LayerTypeICMPv4) != nil || inner.Layer(layers.LayerTypeICMPv6Echo) != nil:
			echoes++
		}
	}
	if echoes < 4*3*2 {
		t.Errorf("the underlay capture shows %d echo requests and replies, want at least %d", echoes, 4*3*2)
	}
	st := p.d.stats(t)
	if st["proxy_answered"] < 2 || st["proxy_invalid"] != 0 {
		t.Errorf("proxy_answered %d, proxy_invalid %d", st["proxy_answered"], st["proxy_invalid"])
	}
	p.d.stop(t)
}

// TestMissController: with proxy, l2miss and l3miss and no entries, a
// ping to an unknown address raises exactly the expected l3miss, a frame
// to an unknown MAC raises l2miss, and the contrib controller, reacting to
// vxlanctl monitor, makes the ping succeed.
func TestMissController(t *testing.T) {
	p := newProxyTopo(t, "--proxy", "--l2miss", "--l3miss")
	mon := p.hostA.Start(t, "env", "VXLAND_RUNDIR="+p.d.rundir, vxlanctlBin, "monitor", "dev", "vxt0")
	// The monitor is subscribed once it shows an fdb change made after it
	// started.
	sentinel := "02:00:5e:00:00:fe"
	testnet.Eventually(t, 5*time.Second, func() error {
		p.d.ctlTry("fdb", "del", sentinel, "dev", "vxt0")
		p.d.ctl(t, "fdb", "add", sentinel, "dev", "vxt0", "dst", "192.0.2.99")
		if !strings.Contains(mon.Output(), sentinel+" dev vxt0 dst 192.0.2.99 self permanent") {
			return errorf("monitor not subscribed yet:\n%s", mon.Output())
		}
		return nil
	})
	p.d.ctl(t, "fdb", "del", sentinel, "dev", "vxt0")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vxlanctl monitor output:\n%s", mon.Output())
		}
	})
	if mon.Exited() {
		t.Fatalf("monitor exited: %s", mon.Output())
	}

	// An unknown address: the ARP request is consumed and reported.
	if out, err := p.cA.TryPing(ctrB4, 1); err == nil {
		t.Fatalf("ping to an unknown neighbour succeeded:\n%s", out)
	}
	l3 := regexp.MustCompile(`(?m)^l3miss (\S+) dev vxt0 vni 42$`)
	testnet.Eventually(t, 5*time.Second, func() error {
		if l3.FindString(mon.Output()) == "" {
			return errorf("no l3miss yet:\n%s", mon.Output())
		}
		return nil
	})
	for _, m := range l3.FindAllStringSubmatch(mon.Output(), -1) {
		if strings.HasPrefix(m[1], "fe80:") {
			continue // duplicate address detection of link-local addresses, as with the kernel
		}
		if m[1] != ctrB4 {
			t.Errorf("l3miss for %s, want only %s:\n%s", m[1], ctrB4, mon.Output())
		}
	}

	// An unknown MAC: container A is told B's address, so its frames go
	// unicast to a MAC vxland has no entry for.
	p.cA.Exec(t, "ip", "neigh", "replace", ctrB4, "lladdr", p.macB, "dev", "eth0", "nud", "permanent")
	p.cA.TryPing(ctrB4, 1)
	testnet.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(mon.Output(), "l2miss "+p.macB+" dev vxt0 vni 42\n") {
			return errorf("no l2miss for %s yet:\n%s", p.macB, mon.Output())
		}
		return nil
	})
	p.cA.Exec(t, "ip", "neigh", "del", ctrB4, "dev", "eth0")
	st := p.d.stats(t)
	if st["l3miss"] == 0 || st["l2miss"] == 0 || st["proxy_consumed"] == 0 {
		t.Errorf("counters l3miss %d l2miss %d proxy_consumed %d", st["l3miss"], st["l2miss"], st["proxy_consumed"])
	}

	// The controller answers the misses from its directory.
	dir := filepath.Join(t.TempDir(), "directory")
	if err := os.WriteFile(dir, []byte(ctrB4+" "+p.macB+" 192.0.2.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("../contrib/controller/vxland-miss-controller.sh")
	if err != nil {
		t.Fatal(err)
	}
	ctrl := p.hostA.Start(t, "env", "VXLAND_RUNDIR="+p.d.rundir, "PATH="+filepath.Dir(vxlanctlBin)+":"+os.Getenv("PATH"),
		"sh", script, "vxt0", dir)
	testnet.Eventually(t, 20*time.Second, func() error {
		if ctrl.Exited() {
			return testnet.Permanent(errorf("controller exited:\n%s", ctrl.Output()))
		}
		out, err := p.cA.TryPing(ctrB4, 1)
		if err != nil {
			return errorf("ping: %v\n%s\ncontroller:\n%s", err, out, ctrl.Output())
		}
		return nil
	})
	p.cB.Ping(t, ctrA4, 2)
	if out := p.d.ctl(t, "neigh", "show", "dev", "vxt0"); !hasLine(out, ctrB4, "lladdr "+p.macB, "PERMANENT") {
		t.Errorf("the controller's neighbour entry is missing:\n%s", out)
	}
	if !strings.Contains(mon.Output(), p.macB+" dev vxt0 dst 192.0.2.2 self permanent\n") {
		t.Errorf("the monitor did not show the controller's fdb entry:\n%s", mon.Output())
	}
	p.d.stop(t)
}

// isARPReplyFrom matches an ARP reply saying where ip is.
func isARPReplyFrom(ip string) func(gopacket.Packet) bool {
	want := net.ParseIP(ip).To4()
	return func(p gopacket.Packet) bool {
		a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP)
		return ok && a.Operation == layers.ARPReply && bytes.Equal(a.SourceProtAddress, want)
	}
}

// isNAFor matches a neighbor advertisement for target.
func isNAFor(target string) func(gopacket.Packet) bool {
	want := net.ParseIP(target)
	return func(p gopacket.Packet) bool {
		na, ok := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
		return ok && na.TargetAddress.Equal(want)
	}
}

func isND(p gopacket.Packet) bool {
	return p.Layer(layers.LayerTypeICMPv6NeighborSolicitation) != nil || p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement) != nil
}

// innerFrame decodes the frame inside a VXLAN datagram, or nil.
func innerFrame(p gopacket.Packet) gopacket.Packet {
	v, ok := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
	if !ok {
		return nil
	}
	return gopacket.NewPacket(v.Payload, layers.LayerTypeEthernet, gopacket.Default)
}

// firstData is the bytes of the first packet match accepts.
func firstData(t *testing.T, pkts []gopacket.Packet, match func(gopacket.Packet) bool) []byte {
	t.Helper()
	for _, p := range pkts {
		if match(p) {
			return p.Data()
		}
	}
	t.Fatal("no such packet captured")
	return nil
}

func mustMAC(t *testing.T, s string) []byte {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// swapAll exchanges every occurrence of each pair's two byte strings.
func swapAll(b []byte, pairs [][2][]byte) []byte {
	out := bytes.Clone(b)
	for _, pr := range pairs {
		x, y := pr[0], pr[1]
		for i := 0; i+len(x) <= len(out); i++ {
			switch {
			case bytes.Equal(b[i:i+len(x)], x):
				copy(out[i:], y)
			case bytes.Equal(b[i:i+len(y)], y):
				copy(out[i:], x)
			}
		}
	}
	return out
}

// fixICMPv6Checksum recomputes the checksum of an untagged Ethernet/IPv6/
// ICMPv6 frame.
func fixICMPv6Checksum(f []byte) {
	ip := f[14:]
	icmp := ip[40 : 40+int(binary.BigEndian.Uint16(ip[4:6]))]
	icmp[2], icmp[3] = 0, 0
	s := checksum.PseudoV6(ip[8:24], ip[24:40], 58, len(icmp))
	binary.BigEndian.PutUint16(icmp[2:], ^checksum.Fold(checksum.Sum(icmp, s)))
}

func validICMPv6(f []byte) bool {
	ip := f[14:]
	icmp := ip[40 : 40+int(binary.BigEndian.Uint16(ip[4:6]))]
	s := checksum.PseudoV6(ip[8:24], ip[24:40], 58, len(icmp))
	return checksum.Fold(checksum.Sum(icmp, s)) == 0xffff
}

// TestProxyHostile writes malformed and unanswerable ARP and Neighbor
// Solicitation frames into the TAP (as the host would send them): each is
// consumed and counted, none is answered or flooded, and a well-formed
// request sent after them is answered.
func TestProxyHostile(t *testing.T) {
	testnet.RequireRoot(t)
	requireIPv6(t)
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	underlay(t, a, b, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	kdev := testnet.KernelVXLAN(t, b, testnet.VXLANOpts{VNI: 40, Remote: "192.0.2.1", Local: "192.0.2.2", Dev: "ul0", Addr: "203.0.113.2/24"})
	kmac := macOf(t, b, kdev)
	// The host's own duplicate address detection on the TAP would be
	// consumed too, and blur the counts.
	a.SetSysctl(t, "net.ipv6.conf.default.accept_dad", "0")
	d := startVxland(t, a, "vxt0", "--vni", "40", "--remote", "192.0.2.2", "--up", "--proxy")
	d.ctl(t, "neigh", "add", "203.0.113.2", "lladdr", kmac, "dev", "vxt0")
	d.ctl(t, "neigh", "add", "2001:db8::2", "lladdr", kmac, "dev", "vxt0")
	tapMAC := mustMAC(t, macOf(t, a, "vxt0"))
	ul := b.Capture(t, "ul0", "udp port 4789")
	replies := a.Capture(t, "vxt0", "arp or icmp6")

	asker4 := net.ParseIP("203.0.113.1").To4()
	target4 := net.ParseIP("203.0.113.2").To4()
	arp := func(edit func([]byte)) []byte {
		f := make([]byte, 42)
		copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		copy(f[6:], tapMAC)
		f[12], f[13] = 0x08, 0x06
		copy(f[14:], []byte{0, 1, 8, 0, 6, 4, 0, 1})
		copy(f[22:], tapMAC)
		copy(f[28:], asker4)
		copy(f[38:], target4)
		if edit != nil {
			edit(f)
		}
		return f
	}
	ns := func(src string, opts layers.ICMPv6Options, edit func([]byte), fix bool) []byte {
		eth := &layers.Ethernet{SrcMAC: tapMAC, DstMAC: net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv6}
		ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255,
			SrcIP: net.ParseIP(src), DstIP: net.ParseIP("ff02::1:ff00:2")}
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
		icmp.SetNetworkLayerForChecksum(ip)
		msg := &layers.ICMPv6NeighborSolicitation{TargetAddress: net.ParseIP("2001:db8::2"), Options: opts}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, icmp, msg); err != nil {
			t.Fatal(err)
		}
		f := bytes.Clone(buf.Bytes())
		if edit != nil {
			edit(f)
		}
		if fix {
			fixICMPv6Checksum(f)
		}
		return f
	}
	slla := layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: tapMAC}}
	invalid := [][]byte{
		arp(nil)[:30],                                                    // short
		arp(func(f []byte) { f[18] = 8 }),                                // hardware length 8
		arp(func(f []byte) { f[19] = 16 }),                               // protocol length 16
		arp(func(f []byte) { f[15] = 0x20 }),                             // hardware type 32
		ns("2001:db8::1", slla, func(f []byte) { f[56] ^= 0xff }, false), // bad checksum
		ns("2001:db8::1", slla, func(f []byte) { f[79] = 0 }, true),      // option length 0
		ns("2001:db8::1", slla, func(f []byte) { f[79] = 4 }, true),      // option past the end
		ns("2001:db8::1", slla, func(f []byte) { f[21] = 64 }, true),     // hop limit 64
		ns("2001:db8::1", slla, func(f []byte) { f[62] = 0xff }, true),   // multicast target
		ns("::", slla, nil, false),                                       // DAD with a source option
	}
	consumed := [][]byte{
		arp(func(f []byte) { f[21] = 2 }),                          // a reply
		arp(func(f []byte) { copy(f[28:], target4) }),              // gratuitous
		arp(func(f []byte) { copy(f[38:], []byte{239, 1, 1, 1}) }), // multicast target
		ns("::", nil, nil, false),                                  // DAD
	}
	// The answerable one asks from an address of its own, to tell its reply
	// from the one the host's own ARP gets later.
	answerable := arp(func(f []byte) { copy(f[28:], []byte{203, 0, 113, 5}) })

	before := d.stats(t)
	err := a.TryDo(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ifi, err := net.InterfaceByName("vxt0")
		if err != nil {
			return err
		}
		to := &unix.SockaddrLinklayer{Ifindex: ifi.Index}
		for _, f := range append(append(invalid, consumed...), answerable) {
			if err := unix.Sendto(fd, f, 0, to); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The answerable request went last through the same queue: once it is
	// answered, every frame before it was handled.
	var after map[string]uint64
	testnet.Eventually(t, 5*time.Second, func() error {
		after = d.stats(t)
		if after["proxy_answered"] == before["proxy_answered"] {
			return errorf("the well-formed request has not been answered yet")
		}
		return nil
	})
	if got := after["proxy_invalid"] - before["proxy_invalid"]; got != uint64(len(invalid)) {
		t.Errorf("proxy_invalid rose by %d, want %d", got, len(invalid))
	}
	if got := after["proxy_consumed"] - before["proxy_consumed"]; got != uint64(len(consumed)) {
		t.Errorf("proxy_consumed rose by %d, want %d", got, len(consumed))
	}
	if got := after["proxy_answered"] - before["proxy_answered"]; got != 1 {
		t.Errorf("proxy_answered rose by %d, want 1", got)
	}
	if after["loop_panics"] != 0 {
		t.Errorf("loop_panics %d", after["loop_panics"])
	}
	// The one reply is the ARP reply; nothing else came back.
	testnet.Eventually(t, 5*time.Second, func() error {
		for _, p := range replies.Packets() {
			if a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP); ok && a.Operation == layers.ARPReply &&
				bytes.Equal(a.DstProtAddress, []byte{203, 0, 113, 5}) {
				return nil
			}
		}
		return errorf("the ARP reply has not shown on the TAP yet")
	})
	// Ping the kernel peer for a sentinel through the underlay capture. With
	// proxy, ARP replies never leave either, so the peer needs to know us
	// (as a kernel VTEP with proxy would).
	b.Exec(t, "ip", "neigh", "replace", "203.0.113.1", "lladdr", macOf(t, a, "vxt0"), "dev", kdev, "nud", "permanent")
	a.Exec(t, "ip", "addr", "add", "203.0.113.1/24", "dev", "vxt0")
	a.Ping(t, "203.0.113.2", 1)
	// vxland's replies come from the neighbour's MAC: one ARP reply, and
	// no advertisement for the target of the hostile solicitations.
	kernelMAC := mustMAC(t, kmac)
	arpReplies := 0
	for _, p := range replies.Stop() {
		eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if eth == nil || !bytes.Equal(eth.SrcMAC, kernelMAC) {
			continue // ours, written into the TAP, or not ARP/ND at all
		}
		if isNAFor("2001:db8::2")(p) {
			t.Errorf("a neighbor advertisement answered a hostile solicitation: %v", p)
		}
		if a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP); ok && a.Operation == layers.ARPReply &&
			!bytes.Equal(a.DstProtAddress, asker4) {
			arpReplies++
		}
	}
	if arpReplies != 1 {
		t.Errorf("%d ARP replies to the injected requests on the TAP, want 1", arpReplies)
	}
	echoes := 0
	for _, p := range ul.Stop() {
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		inner := innerFrame(p)
		if inner == nil || ip == nil || !ip.SrcIP.Equal(net.ParseIP("192.0.2.1")) {
			continue // only what vxland sent
		}
		if inner.Layer(layers.LayerTypeARP) != nil || isND(inner) {
			t.Errorf("flooded over the underlay: %v", inner)
		}
		if inner.Layer(layers.LayerTypeICMPv4) != nil {
			echoes++
		}
	}
	if echoes == 0 {
		t.Error("the underlay capture missed the sentinel ping")
	}
}

// TestRouteShortCircuit: host A routes 198.51.100.0/24 through a router
// whose MAC's forwarding entry (flagged router) points at a VTEP that does
// not exist; with rsc, vxland sends the frames straight to the kernel peer
// that owns the destination, found through the neighbour table, and the
// ping works. Without the neighbour entry it raises l3miss and the frames
// go to the router, which never answers.
func TestRouteShortCircuit(t *testing.T) {
	testnet.RequireRoot(t)
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	underlay(t, a, b, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	kdev := testnet.KernelVXLAN(t, b, testnet.VXLANOpts{VNI: 40, Local: "192.0.2.2", Dev: "ul0",
		NoLearning: true, Addr: "198.51.100.2/24"})
	kmac := macOf(t, b, kdev)
	d := startVxland(t, a, "vxt0", "--vni", "40", "--local", "192.0.2.1", "--dev", "ul0",
		"--learning=false", "--rsc", "--l3miss", "--addr", "203.0.113.1/24", "--up")
	tapMAC := macOf(t, a, "vxt0")
	const router = "02:00:5e:00:00:fe"
	a.Exec(t, "ip", "neigh", "add", "203.0.113.254", "lladdr", router, "dev", "vxt0", "nud", "permanent")
	a.Exec(t, "ip", "route", "add", "198.51.100.0/24", "via", "203.0.113.254")
	d.ctl(t, "fdb", "add", router, "dev", "vxt0", "dst", "192.0.2.9", "router")
	d.ctl(t, "fdb", "add", kmac, "dev", "vxt0", "dst", "192.0.2.2")
	// The peer answers straight back to host A.
	b.Exec(t, "ip", "route", "add", "203.0.113.0/24", "dev", kdev)
	b.Exec(t, "ip", "neigh", "add", "203.0.113.1", "lladdr", tapMAC, "dev", kdev, "nud", "permanent")
	b.Exec(t, "bridge", "fdb", "add", tapMAC, "dev", kdev, "dst", "192.0.2.1", "self", "permanent")

	if out, err := a.TryPing("198.51.100.2", 1); err == nil {
		t.Fatalf("ping through a router that does not exist worked without a neighbour entry:\n%s", out)
	}
	st := d.stats(t)
	if st["l3miss"] == 0 || st["rsc_rewrites"] != 0 {
		t.Errorf("without a neighbour: l3miss %d, rsc_rewrites %d; want > 0, 0", st["l3miss"], st["rsc_rewrites"])
	}
	d.ctl(t, "neigh", "add", "198.51.100.2", "lladdr", kmac, "dev", "vxt0")
	if out := d.ctl(t, "fdb", "show", "dev", "vxt0"); !hasLine(out, router, "dst 192.0.2.9", "self router permanent") {
		t.Errorf("fdb show does not flag the router:\n%s", out)
	}
	ul := b.Capture(t, "ul0", "udp port 4789")
	a.Ping(t, "198.51.100.2", 3)
	if st := d.stats(t); st["rsc_rewrites"] < 3 {
		t.Errorf("rsc_rewrites %d, want at least 3", st["rsc_rewrites"])
	}
	// The echo requests reached the peer from the router's MAC, to its own.
	seen := 0
	for _, p := range ul.Stop() {
		inner := innerFrame(p)
		if inner == nil || inner.Layer(layers.LayerTypeICMPv4) == nil {
			continue
		}
		eth := inner.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if eth.DstMAC.String() == kmac {
			seen++
			if eth.SrcMAC.String() != router {
				t.Errorf("short-circuited frame from %s, want the router's MAC %s", eth.SrcMAC, router)
			}
		}
	}
	if seen == 0 {
		t.Error("no short-circuited echo request on the underlay")
	}
	d.stop(t)
}

// TestMissesLikeKernel sets a kernel vxlan device with "proxy l2miss
// l3miss" and vxland with the same flags side by side, each in a bridge
// with a container, and has both containers do the same: ping an address
// nobody knows, then a neighbour whose MAC nobody knows. `ip monitor
// neigh` on the kernel's device and `vxlanctl monitor` report the same
// misses.
func TestMissesLikeKernel(t *testing.T) {
	testnet.RequireRoot(t)
	hostK, hostV := testnet.NewNS(t), testnet.NewNS(t)
	requireBridge(t, hostV)
	underlay(t, hostV, hostK, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	newBridge(t, hostK, "br0")
	newBridge(t, hostV, "br0")
	cK := container(t, hostK, "br0", "veth-k", 1450, "203.0.113.11/24")
	cV := container(t, hostV, "br0", "veth-v", 1450, "203.0.113.11/24")
	kdev := testnet.KernelVXLAN(t, hostK, testnet.VXLANOpts{Name: "vxlan0", VNI: 42, Local: "192.0.2.2", Dev: "ul0",
		NoLearning: true, Extra: []string{"proxy", "l2miss", "l3miss"}})
	hostK.Exec(t, "ip", "link", "set", kdev, "master", "br0")
	d := startTopo(t, hostV, map[string]*testnet.NS{"vxt0": hostV}, "--tap", "vxt0", "--vni", "42",
		"--local", "192.0.2.1", "--dev", "ul0", "--learning=false", "--master", "br0", "--up",
		"--proxy", "--l2miss", "--l3miss")

	kmon := hostK.Start(t, "ip", "monitor", "neigh", "dev", kdev)
	vmon := hostV.Start(t, "env", "VXLAND_RUNDIR="+d.rundir, vxlanctlBin, "monitor", "dev", "vxt0")
	// Both monitors are listening once they show a change made after
	// they started (the kernel reports a neighbour change only when
	// something changed: a new address each time).
	attempt := 0
	testnet.Eventually(t, 5*time.Second, func() error {
		attempt++
		ip := fmt.Sprintf("198.51.100.%d", attempt)
		hostK.Try("ip", "neigh", "replace", ip, "lladdr", "02:00:5e:00:00:fa", "dev", kdev)
		d.ctlTry("fdb", "replace", "02:00:5e:00:00:fa", "dev", "vxt0", "dst", "192.0.2.250")
		if !strings.Contains(kmon.Output(), ip+" ") || !strings.Contains(vmon.Output(), "02:00:5e:00:00:fa") {
			return errorf("monitors not listening yet:\n%s\n%s", kmon.Output(), vmon.Output())
		}
		return nil
	})
	// The same steps in both containers, at the same time.
	var wg sync.WaitGroup
	for _, c := range []*testnet.NS{cK, cV} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.TryPing("203.0.113.99", 1)
			c.Try("ip", "neigh", "replace", "203.0.113.98", "lladdr", "02:00:5e:00:00:98", "dev", "eth0", "nud", "permanent")
			c.TryPing("203.0.113.98", 1)
		}()
	}
	wg.Wait()
	kernelRE := regexp.MustCompile(`(?m)^miss (lladdr )?(\S+)`)
	vxlandRE := regexp.MustCompile(`(?m)^(l2miss|l3miss) (\S+) dev vxt0 vni 42$`)
	misses := func(out string, re *regexp.Regexp, l2 func(m []string) bool) map[string]bool {
		set := map[string]bool{}
		for _, m := range re.FindAllStringSubmatch(out, -1) {
			key := m[2]
			if !strings.HasPrefix(key, "203.0.113.") && key != "02:00:5e:00:00:98" {
				continue // the containers' own IPv6 duplicate address detection, say
			}
			kind := "l3miss"
			if l2(m) {
				kind = "l2miss"
			}
			set[kind+" "+key] = true
		}
		return set
	}
	want := map[string]bool{"l3miss 203.0.113.99": true, "l2miss 02:00:5e:00:00:98": true}
	var k, v map[string]bool
	testnet.Eventually(t, 5*time.Second, func() error {
		k = misses(kmon.Output(), kernelRE, func(m []string) bool { return m[1] != "" })
		v = misses(vmon.Output(), vxlandRE, func(m []string) bool { return m[1] == "l2miss" })
		if len(k) < len(want) || len(v) < len(want) {
			return errorf("kernel %v, vxland %v so far", k, v)
		}
		return nil
	})
	if !maps.Equal(k, want) || !maps.Equal(v, want) {
		t.Errorf("misses: kernel %v, vxland %v, want %v\nip monitor:\n%s\nvxlanctl monitor:\n%s",
			k, v, want, kmon.Output(), vmon.Output())
	}
}
