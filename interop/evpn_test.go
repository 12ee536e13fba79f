package interop

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vxland/vxland/internal/testnet"
)

// evpnWorld is an underlay switch (a bridge in a hub namespace) and the
// hosts plugged into it as 192.0.2.i.
type evpnWorld struct {
	t  *testing.T
	sw *testnet.Switch
}

func newEVPNWorld(t *testing.T) *evpnWorld {
	testnet.RequireRoot(t)
	return &evpnWorld{t: t, sw: testnet.NewSwitch(t)}
}

// host plugs a new namespace into the switch as 192.0.2.i (device ul0).
func (w *evpnWorld) host(i int) *testnet.NS {
	return w.sw.PlugN(w.t, i)
}

// frrHost builds an FRR VTEP on host i as an FRR user builds one: a kernel
// vxlan device (VNI 100, nolearning) and a container (203.0.113.1i) on a
// bridge, and zebra + bgpd advertising all VNIs to the neighbors
// ("IP remote-as AS" each). It returns the container and FRR.
func (w *evpnWorld) frrHost(ns *testnet.NS, i int, asn string, neighbors ...string) (*testnet.NS, *testnet.FRR) {
	t := w.t
	ns.Exec(t, "ip", "link", "add", "br100", "type", "bridge")
	ns.Exec(t, "ip", "link", "add", "vxlan100", "type", "vxlan", "id", "100",
		"local", fmt.Sprintf("192.0.2.%d", i), "dstport", "4789", "nolearning")
	ns.Exec(t, "ip", "link", "set", "vxlan100", "master", "br100")
	ns.Exec(t, "ip", "link", "set", "vxlan100", "up")
	ns.Exec(t, "ip", "link", "set", "br100", "up")
	c := testnet.NewNS(t)
	testnet.Link(t, ns, "c1", c, "eth0")
	ns.Exec(t, "ip", "link", "set", "c1", "master", "br100")
	c.Addr(t, "eth0", fmt.Sprintf("203.0.113.1%d/24", i))

	var b strings.Builder
	fmt.Fprintf(&b, "frr defaults datacenter\nhostname %s\nrouter bgp %s\n bgp router-id 192.0.2.%d\n no bgp default ipv4-unicast\n", ns.Name, asn, i)
	for _, n := range neighbors {
		fmt.Fprintf(&b, " neighbor %s\n", n)
	}
	b.WriteString(" address-family l2vpn evpn\n")
	for _, n := range neighbors {
		fmt.Fprintf(&b, "  neighbor %s activate\n", strings.Fields(n)[0])
	}
	b.WriteString("  advertise-all-vni\n exit-address-family\n")
	return c, testnet.StartFRR(t, ns, b.String())
}

// vtep runs vxland on host i as an EVPN VTEP: VNI 100, TAP vx0 with
// 203.0.113.i, no remote.
func (w *evpnWorld) vtep(ns *testnet.NS, i int, extra ...string) *daemon {
	args := append([]string{"--vni", "100", "--local", fmt.Sprintf("192.0.2.%d", i), "--up",
		"--addr", fmt.Sprintf("203.0.113.%d/24", i)}, extra...)
	return startShared(w.t, ns, w.t.TempDir(), args...)
}

// neighHas polls until d's `neigh show dev vx0` has the line want.
func neighHas(t *testing.T, d *daemon, timeout time.Duration, want string) {
	t.Helper()
	testnet.Eventually(t, timeout, func() error {
		out, err := d.ctlTry("neigh", "show", "dev", "vx0")
		if err != nil {
			return err
		}
		if !strings.Contains(out, want) {
			return fmt.Errorf("neigh show of %s lacks %q:\n%s", d.ns, want, out)
		}
		return nil
	})
}

func evpnOwned(mac, dst string) string {
	return mac + " dst " + dst + " self extern_learn static owner evpn"
}

// vtyHas polls until the output of a vtysh command contains every one of
// want and none of gone.
func vtyHas(t *testing.T, f *testnet.FRR, cmd string, timeout time.Duration, want, gone []string) {
	t.Helper()
	testnet.Eventually(t, timeout, func() error {
		out, err := f.TryVtysh(cmd)
		if err != nil {
			return err
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				return fmt.Errorf("%q lacks %q:\n%s", cmd, w, out)
			}
		}
		for _, g := range gone {
			if strings.Contains(out, g) {
				return fmt.Errorf("%q still has %q:\n%s", cmd, g, out)
			}
		}
		return nil
	})
}

// kernelFDBHas polls until `bridge fdb show dev vxlan100` on ns contains
// every one of want and none of gone.
func kernelFDBHas(t *testing.T, ns *testnet.NS, timeout time.Duration, want, gone []string) {
	t.Helper()
	testnet.Eventually(t, timeout, func() error {
		out, err := ns.Try("bridge", "fdb", "show", "dev", "vxlan100")
		if err != nil {
			return err
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				return fmt.Errorf("fdb of vxlan100 in %s lacks %q:\n%s", ns, w, out)
			}
		}
		for _, g := range gone {
			if strings.Contains(out, g) {
				return fmt.Errorf("fdb of vxlan100 in %s still has %q:\n%s", ns, g, out)
			}
		}
		return nil
	})
}

// TestEVPNWithFRR: vxland and an FRR VTEP (kernel vxlan, bridge, zebra,
// bgpd) in eBGP. FRR shows vxland's type-3 and type-2 routes and zebra
// programs the flood entry and vxland's MAC toward vxland's VTEP; vxland
// installs FRR's flood entry and the container's MAC; the container and
// vxland's TAP exchange ping and TCP. FRR stopped: vxland removes what it
// learnt; FRR back: everything returns; vxland stopped: FRR withdraws its
// routes and zebra removes the entries.
func TestEVPNWithFRR(t *testing.T) {
	w := newEVPNWorld(t)
	h1, h2 := w.host(1), w.host(2)
	c1, frr := w.frrHost(h1, 1, "65001", "192.0.2.2 remote-as 65002")
	d2 := w.vtep(h2, 2, "--bgp-asn", "65002", "--bgp-neighbor", "192.0.2.1:65001")
	m2 := macOf(t, h2, "vx0")
	mc1 := macOf(t, c1, "eth0")

	const converge = 30 * time.Second
	vtyHas(t, frr, "show bgp l2vpn evpn route", converge, []string{
		"Route Distinguisher: 192.0.2.2:100",
		"[3]:[0]:[32]:[192.0.2.2]",
		"[2]:[0]:[48]:[" + m2 + "]\n",
		"[2]:[0]:[48]:[" + m2 + "]:[32]:[203.0.113.2]",
		"RT:65002:100 ET:8",
	}, nil)
	vtyHas(t, frr, "show evpn vni 100", 5*time.Second, []string{"192.0.2.2 flood: HER"}, nil)
	kernelFDBHas(t, h1, 5*time.Second, []string{
		"00:00:00:00:00:00 dst 192.0.2.2 self permanent",
		m2 + " dst 192.0.2.2 self extern_learn",
	}, nil)
	fdbHas(t, d2, 5*time.Second, []string{evpnOwned("00:00:00:00:00:00", "192.0.2.1")}, nil)

	c1.Ping(t, "203.0.113.2", 3)
	// The bridge learnt the container's MAC: FRR advertises it, vxland
	// installs it.
	fdbHas(t, d2, 10*time.Second, []string{evpnOwned(mc1, "192.0.2.1")}, nil)
	testnet.TCPTransfer(t, c1, h2, "203.0.113.2", 4<<20)

	out := d2.ctl(t, "bgp", "show")
	for _, want := range []string{"192.0.2.1", "65001", "established", "vni 100", "rd 192.0.2.2:100", "rt 65002:100", "192.0.2.1"} {
		if !strings.Contains(out, want) {
			t.Errorf("bgp show lacks %q:\n%s", want, out)
		}
	}

	// FRR stops (bgpd sends a notification): vxland removes what it
	// learnt from it.
	frr.Stop()
	fdbHas(t, d2, 15*time.Second, nil, []string{"owner evpn"})
	// FRR is back: the session and the routes return.
	frr.Start()
	fdbHas(t, d2, converge, []string{evpnOwned("00:00:00:00:00:00", "192.0.2.1")}, nil)
	kernelFDBHas(t, h1, converge, []string{"00:00:00:00:00:00 dst 192.0.2.2 self permanent"}, nil)
	c1.Ping(t, "203.0.113.2", 2)

	// vxland stops: it closes the session, FRR withdraws its routes and
	// zebra removes the entries toward it.
	d2.stop(t)
	vtyHas(t, frr, "show bgp l2vpn evpn route", 15*time.Second, nil, []string{"192.0.2.2"})
	kernelFDBHas(t, h1, 5*time.Second, nil, []string{"dst 192.0.2.2"})
}

// TestEVPNThreeVTEPsIBGP: one FRR VTEP and two vxland VTEPs in one AS, a
// full iBGP mesh. Every VTEP floods to the two others, every pair reaches
// each other, and a broadcast reaches each other VTEP exactly once. A container's MAC moves from FRR's bridge to the
// bridge of a vxland host: vxland advertises it with sequence number 1,
// and FRR and the third VTEP move it to that host.
func TestEVPNThreeVTEPsIBGP(t *testing.T) {
	w := newEVPNWorld(t)
	h1, h2, h3 := w.host(1), w.host(2), w.host(3)
	c1, frr := w.frrHost(h1, 1, "65000", "192.0.2.2 remote-as 65000", "192.0.2.3 remote-as 65000")
	// Host 2 bridges its TAP, for the container that moves there.
	h2.Exec(t, "ip", "link", "add", "br2", "type", "bridge")
	h2.Exec(t, "ip", "link", "set", "br2", "up")
	h2.Addr(t, "br2", "203.0.113.2/24")
	d2 := startShared(t, h2, t.TempDir(), "--vni", "100", "--local", "192.0.2.2", "--up", "--master", "br2",
		"--bgp-asn", "65000", "--bgp-neighbor", "192.0.2.1", "--bgp-neighbor", "192.0.2.3")
	d3 := w.vtep(h3, 3, "--bgp-asn", "65000", "--bgp-neighbor", "192.0.2.1", "--bgp-neighbor", "192.0.2.2")
	m2, m3 := macOf(t, h2, "vx0"), macOf(t, h3, "vx0")

	const converge = 30 * time.Second
	vtyHas(t, frr, "show evpn vni 100", converge, []string{"192.0.2.2 flood: HER", "192.0.2.3 flood: HER"}, nil)
	kernelFDBHas(t, h1, 5*time.Second, []string{
		"00:00:00:00:00:00 dst 192.0.2.2 self permanent", "00:00:00:00:00:00 dst 192.0.2.3 self permanent",
		m2 + " dst 192.0.2.2 self extern_learn", m3 + " dst 192.0.2.3 self extern_learn",
	}, nil)
	fdbHas(t, d2, converge, []string{evpnOwned("00:00:00:00:00:00", "192.0.2.1"), evpnOwned("00:00:00:00:00:00", "192.0.2.3"), evpnOwned(m3, "192.0.2.3")}, nil)
	fdbHas(t, d3, converge, []string{evpnOwned("00:00:00:00:00:00", "192.0.2.1"), evpnOwned("00:00:00:00:00:00", "192.0.2.2"), evpnOwned(m2, "192.0.2.2")}, nil)
	out := d3.ctl(t, "bgp", "show")
	for _, want := range []string{"neighbor 192.0.2.1 as 65000 established", "neighbor 192.0.2.2 as 65000 established", "rt 65000:100"} {
		if !strings.Contains(out, want) {
			t.Errorf("bgp show lacks %q:\n%s", want, out)
		}
	}
	c1.Ping(t, "203.0.113.2", 2)
	c1.Ping(t, "203.0.113.3", 2)
	h2.Ping(t, "203.0.113.3", 2)
	// The MAC+IP route of host 3's TAP is a neighbour binding on host 2,
	// owned by EVPN (what --proxy answers ARP from).
	neighHas(t, d2, 10*time.Second, "203.0.113.3 lladdr "+m3+" PERMANENT proto evpn")

	// BUM from host 3 reaches each other VTEP exactly once (head-end
	// replication over the flood list EVPN built).
	cap1 := h1.Capture(t, "ul0", "udp dst port 4789 and src host 192.0.2.3")
	cap2 := h2.Capture(t, "ul0", "udp dst port 4789 and src host 192.0.2.3")
	primeCapture(t, cap1, func() { h3.TryPing("203.0.113.11", 1) }, nil)
	primeCapture(t, cap2, func() { h3.TryPing("203.0.113.2", 1) }, nil)
	marker := []byte("vxland-evpn-flood-marker")
	const n = 5
	var frames [][]byte
	for i := 0; i < n; i++ {
		f := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x43, 0x88, 0xb5}, marker...)
		frames = append(frames, append(f, byte(i)))
	}
	sentinel := []byte("vxland-evpn-flood-sentinel")
	frames = append(frames, append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x43, 0x88, 0xb5}, sentinel...))
	sendFrames(t, h3, "vx0", frames)
	awaitSentinel(t, sentinel, cap1, cap2)
	if got := countVXLAN(cap1.Stop(), marker); got != n {
		t.Errorf("the FRR VTEP got %d copies of %d broadcast frames, want exactly %d", got, n, n)
	}
	if got := countVXLAN(cap2.Stop(), marker); got != n {
		t.Errorf("the vxland VTEP got %d copies of %d broadcast frames, want exactly %d", got, n, n)
	}

	// A container on host 2's bridge, behind vxland's TAP: vxland
	// advertises its MAC (sequence 0), FRR and the third VTEP install it.
	const roamMAC = "02:00:00:00:00:99"
	roam := testnet.NewNS(t)
	testnet.Link(t, h2, "m2", roam, "eth0")
	h2.Exec(t, "ip", "link", "set", "m2", "master", "br2")
	roam.Exec(t, "ip", "link", "set", "eth0", "address", roamMAC)
	roam.Addr(t, "eth0", "203.0.113.99/24")
	roam.Ping(t, "203.0.113.3", 2)
	fdbHas(t, d3, 10*time.Second, []string{evpnOwned(roamMAC, "192.0.2.2")}, nil)
	kernelFDBHas(t, h1, 10*time.Second, []string{roamMAC + " dst 192.0.2.2 self extern_learn"}, nil)
	// Its address, seen in its ARP, goes out in a MAC+IP route.
	vtyHas(t, frr, "show bgp l2vpn evpn route rd 192.0.2.2:100", 10*time.Second,
		[]string{"[2]:[0]:[48]:[" + roamMAC + "]:[32]:[203.0.113.99]"}, nil)
	neighHas(t, d3, 10*time.Second, "203.0.113.99 lladdr "+roamMAC+" PERMANENT proto evpn")

	// It moves to FRR's bridge, as a VM migrates: a copy with the same
	// MAC and address speaks there while the original, now silent, is
	// still in vxland's local view (it ages out after 300 s). FRR learns
	// the MAC on its bridge and advertises it with sequence 1; vxland
	// gives it up and both vxland VTEPs send to FRR. Static neighbour
	// entries keep ARP out: only unicast crosses, from host 1 to host 3.
	roam2 := testnet.NewNS(t)
	testnet.Link(t, h1, "m1", roam2, "eth0")
	h1.Exec(t, "ip", "link", "set", "m1", "master", "br100")
	roam2.Exec(t, "ip", "link", "set", "eth0", "address", roamMAC)
	roam2.Addr(t, "eth0", "203.0.113.99/24")
	roam2.Exec(t, "ip", "neigh", "replace", "203.0.113.3", "lladdr", m3, "dev", "eth0", "nud", "permanent")
	h3.Exec(t, "ip", "neigh", "replace", "203.0.113.99", "lladdr", roamMAC, "dev", "vx0", "nud", "permanent")
	moved := time.Now()
	spoke := make(chan error, 1)
	go func() { _, err := roam2.TryPing("203.0.113.3", 1); spoke <- err }() // its first frame teaches FRR's bridge
	fdbHas(t, d3, 5*time.Second, []string{evpnOwned(roamMAC, "192.0.2.1")}, nil)
	t.Logf("MAC move to FRR followed by the third VTEP %v after the container first spoke there", time.Since(moved).Round(time.Millisecond))
	<-spoke
	testnet.Eventually(t, 10*time.Second, func() error {
		_, err := roam2.TryPing("203.0.113.3", 1)
		return err
	})
	fdbHas(t, d2, 5*time.Second, []string{evpnOwned(roamMAC, "192.0.2.1")}, nil)
	vtyHas(t, frr, "show bgp l2vpn evpn route", 5*time.Second, []string{"MM:1"}, nil)
	vtyHas(t, frr, "show bgp l2vpn evpn route rd 192.0.2.2:100", 5*time.Second, nil, []string{roamMAC})
	if !strings.Contains(d2.proc.Output(), roamMAC+" moved to 192.0.2.1 (sequence 1)") {
		t.Errorf("vxland on host 2 did not log the move:\n%s", d2.proc.Output())
	}
	roam.Exec(t, "ip", "link", "set", "eth0", "down") // the original is gone
	c1.Ping(t, "203.0.113.99", 2)
	h3.Ping(t, "203.0.113.99", 2)
}
