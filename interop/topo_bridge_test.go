package interop

import (
	"strings"
	"testing"

	"github.com/vxland/vxland/internal/testnet"
)

// TestTopoBridge follows the "VXLAN + bridge" guide: two hosts, each with a
// Linux bridge br0 and two containers (namespaces with a veth in br0).
// Host A's bridge holds vxland's TAP (--master br0), host B's a kernel
// vxlan device. The four containers share one L2 segment 203.0.113.0/24
// across the tunnel; the VTEPs carry the containers' MACs, not their own.
func TestTopoBridge(t *testing.T) {
	testnet.RequireRoot(t)
	hostA, hostB := testnet.NewNS(t), testnet.NewNS(t)
	requireBridge(t, hostA)
	underlay(t, hostA, hostB, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	newBridge(t, hostA, "br0")
	newBridge(t, hostB, "br0")

	// Containers use the tunnel's MTU, as Docker and CNI plugins set it.
	const mtu = 1450
	ctrs := []struct {
		name string
		host *testnet.NS
		ip   string
		ns   *testnet.NS
	}{
		{name: "a1", host: hostA, ip: "203.0.113.11"},
		{name: "a2", host: hostA, ip: "203.0.113.12"},
		{name: "b1", host: hostB, ip: "203.0.113.21"},
		{name: "b2", host: hostB, ip: "203.0.113.22"},
	}
	for i := range ctrs {
		c := &ctrs[i]
		c.ns = container(t, c.host, "br0", "veth-"+c.name, mtu, c.ip+"/24")
	}

	kdev := testnet.KernelVXLAN(t, hostB, testnet.VXLANOpts{Name: "vxlan0", VNI: 42,
		Remote: "192.0.2.1", Local: "192.0.2.2", Dev: "ul0"})
	hostB.Exec(t, "ip", "link", "set", kdev, "master", "br0")
	d := startTopo(t, hostA, map[string]*testnet.NS{"vxt0": hostA}, "--tap", "vxt0", "--vni", "42",
		"--remote", "192.0.2.2", "--master", "br0", "--up")

	if out := hostA.Exec(t, "ip", "-d", "link", "show", "vxt0"); !strings.Contains(out, "master br0") {
		t.Fatalf("--master br0: the TAP is not a port of br0:\n%s", out)
	}
	if out := hostA.Exec(t, "bridge", "link", "show", "dev", "vxt0"); !strings.Contains(out, "state forwarding") {
		t.Errorf("the TAP's bridge port is not forwarding:\n%s", out)
	}
	if mtu := linkMTU(t, hostA, "vxt0"); mtu != 1450 {
		t.Errorf("TAP MTU %d, want 1450", mtu)
	}

	// Every container reaches every other, across the tunnel and on its
	// own host.
	for _, from := range ctrs {
		for _, to := range ctrs {
			if from.name == to.name {
				continue
			}
			if out, err := from.ns.TryPing(to.ip, 1); err != nil {
				t.Errorf("container %s -> %s (%s): %v\n%s", from.name, to.name, to.ip, err, out)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	testnet.TCPTransfer(t, ctrs[0].ns, ctrs[2].ns, ctrs[2].ip, 4<<20) // a1 -> b1
	testnet.TCPTransfer(t, ctrs[3].ns, ctrs[1].ns, ctrs[1].ip, 4<<20) // b2 -> a2

	// Each VTEP learned the remote containers' MACs at the other host.
	vfdb := d.ctl(t, "fdb", "show", "dev", "vxt0")
	kfdb := hostB.Exec(t, "bridge", "fdb", "show", "dev", kdev)
	for _, c := range ctrs {
		mac := macOf(t, c.ns, "eth0")
		if c.host == hostB && !hasLine(vfdb, mac, "dst 192.0.2.2") {
			t.Errorf("vxland did not learn container %s's MAC %s at 192.0.2.2:\n%s", c.name, mac, vfdb)
		}
		if c.host == hostA && !hasLine(kfdb, mac, "dst 192.0.2.1") {
			t.Errorf("the kernel VTEP did not learn container %s's MAC %s at 192.0.2.1:\n%s", c.name, mac, kfdb)
		}
	}
	// And host A's bridge learned B's containers behind the TAP.
	brfdb := hostA.Exec(t, "bridge", "fdb", "show", "br", "br0")
	for _, c := range ctrs[2:] {
		mac := macOf(t, c.ns, "eth0")
		if !hasLine(brfdb, mac, "dev vxt0") {
			t.Errorf("br0 on host A did not learn container %s's MAC %s on port vxt0:\n%s", c.name, mac, brfdb)
		}
	}
	d.stop(t)
	if out := hostA.Exec(t, "ip", "link", "show", "master", "br0"); strings.Contains(out, "vxt0") {
		t.Errorf("br0 still lists the TAP after vxland exited:\n%s", out)
	}
}
