package interop

import (
	"bytes"
	"fmt"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/vxland/vxland/internal/testnet"
)

// threeHosts builds vxland's host a and two kernel vxlan hosts b and c, a
// reaching b over 192.0.2.0/24 and c over 198.51.100.0/24. The kernel peers
// flood to a. Overlay: a 203.0.113.1, b .2, c .3.
func threeHosts(t *testing.T) (a, b, c *testnet.NS) {
	a, b, c = testnet.NewNS(t), testnet.NewNS(t), testnet.NewNS(t)
	testnet.Link(t, a, "ulb", b, "ul0")
	a.Addr(t, "ulb", "192.0.2.1/24")
	b.Addr(t, "ul0", "192.0.2.2/24")
	testnet.Link(t, a, "ulc", c, "ul0")
	a.Addr(t, "ulc", "198.51.100.1/24")
	c.Addr(t, "ul0", "198.51.100.2/24")
	testnet.KernelVXLAN(t, b, testnet.VXLANOpts{Name: "vxlan0", VNI: 40, Remote: "192.0.2.1", Local: "192.0.2.2", Dev: "ul0", Addr: "203.0.113.2/24"})
	testnet.KernelVXLAN(t, c, testnet.VXLANOpts{Name: "vxlan0", VNI: 40, Remote: "198.51.100.1", Local: "198.51.100.2", Dev: "ul0", Addr: "203.0.113.3/24"})
	return a, b, c
}

// sendFrames writes frames to the TAP named ifname in ns through a packet
// socket, as if the host's stack had sent them.
func sendFrames(t *testing.T, ns *testnet.NS, ifname string, frames [][]byte) {
	t.Helper()
	err := ns.TryDo(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index}
		for _, f := range frames {
			if err := unix.Sendto(fd, f, 0, sa); err != nil {
				return fmt.Errorf("send on %s: %w", ifname, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// countVXLAN counts captured VXLAN datagrams whose inner payload contains
// marker.
func countVXLAN(pkts []gopacket.Packet, marker []byte) int {
	n := 0
	for _, p := range pkts {
		if vx, ok := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN); ok && bytes.Contains(vx.Payload, marker) {
			n++
		}
	}
	return n
}

// TestHeadEndReplication checks that with two --remote peers every
// broadcast frame goes exactly once to each, and that both kernel peers can
// reach vxland.
func TestHeadEndReplication(t *testing.T) {
	testnet.RequireRoot(t)
	a, b, c := threeHosts(t)
	startVxland(t, a, "vxt0", "--vni", "40", "--remote", "192.0.2.2", "--remote", "198.51.100.2",
		"--addr", "203.0.113.1/24", "--up")
	a.Ping(t, "203.0.113.2", 2)
	a.Ping(t, "203.0.113.3", 2)

	capB := b.Capture(t, "ul0", "udp dst port 4789")
	capC := c.Capture(t, "ul0", "udp dst port 4789")
	primeCapture(t, capB, func() { a.TryPing("203.0.113.2", 1) }, nil)
	primeCapture(t, capC, func() { a.TryPing("203.0.113.3", 1) }, nil)
	marker := []byte("vxland-flood-marker")
	const n = 5
	var frames [][]byte
	for i := 0; i < n; i++ {
		f := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x42, 0x88, 0xb5}, marker...)
		frames = append(frames, append(f, byte(i)))
	}
	// A last frame of the same flow (same addresses and EtherType: same
	// transmit socket, same order) is the barrier for duplicates.
	sentinel := []byte("vxland-flood-sentinel")
	frames = append(frames, append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x42, 0x88, 0xb5}, sentinel...))
	sendFrames(t, a, "vxt0", frames)
	awaitSentinel(t, sentinel, capB, capC)
	if got := countVXLAN(capB.Stop(), marker); got != n {
		t.Errorf("peer b got %d copies of %d broadcast frames, want exactly %d", got, n, n)
	}
	if got := countVXLAN(capC.Stop(), marker); got != n {
		t.Errorf("peer c got %d copies of %d broadcast frames, want exactly %d", got, n, n)
	}
}

// TestStaticEntrySteers floods only to c, and reaches b through a static
// FDB entry (with a static neighbour, as flannel programs kernel peers).
// Removing the entry cuts b off again.
func TestStaticEntrySteers(t *testing.T) {
	testnet.RequireRoot(t)
	a, b, _ := threeHosts(t)
	d := startVxland(t, a, "vxt0", "--vni", "40", "--remote", "198.51.100.2", "--learning=false",
		"--addr", "203.0.113.1/24", "--up")
	bMAC := macOf(t, b, "vxlan0")
	a.Exec(t, "ip", "neigh", "replace", "203.0.113.2", "lladdr", bMAC, "dev", "vxt0", "nud", "permanent")

	if _, err := a.TryPing("203.0.113.2", 1); err == nil {
		t.Fatal("b answered before any FDB entry pointed at it: frames to its MAC should flood to c only")
	}
	d.ctl(t, "fdb", "add", bMAC, "dev", "vxt0", "dst", "192.0.2.2")
	out := d.ctl(t, "fdb", "show", "dev", "vxt0")
	if !hasLine(out, bMAC, "dst 192.0.2.2") {
		t.Fatalf("fdb show lacks the static entry:\n%s", out)
	}
	a.Ping(t, "203.0.113.2", 3)
	testnet.TCPTransfer(t, a, b, "203.0.113.2", 1<<20)

	d.ctl(t, "fdb", "del", bMAC, "dev", "vxt0")
	if _, err := a.TryPing("203.0.113.2", 2); err == nil {
		t.Error("b still answers after its FDB entry was deleted")
	}
	if st := d.stats(t); st["fdb_learned"] != 0 {
		t.Errorf("--learning=false learned %d entries", st["fdb_learned"])
	}
}
