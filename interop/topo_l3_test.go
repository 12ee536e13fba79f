package interop

import (
	"strings"
	"testing"

	"github.com/vxland/vxland/internal/testnet"
)

// TestTopoL3Overlay builds flannel's vxlan backend by hand: each host has
// a bridge cni0 with a pod namespace behind it and a VTEP device "vx" with
// a /32 address, routes the other host's pod subnet onlink through the
// VTEP address, and programs a permanent neighbour and a static FDB entry
// for the other VTEP. No flooding, no learning: host A runs vxland without
// --remote and with --learning=false, host B a kernel vxlan device with
// nolearning. Pods talk across hosts by routing, not by bridging.
//
//	host A: cni0 203.0.113.1/25, pod 203.0.113.2, vx 198.51.100.0/32, underlay 192.0.2.1
//	host B: cni0 203.0.113.129/25, pod 203.0.113.130, vx 198.51.100.128/32, underlay 192.0.2.2
func TestTopoL3Overlay(t *testing.T) {
	testnet.RequireRoot(t)
	hostA, hostB := testnet.NewNS(t), testnet.NewNS(t)
	requireBridge(t, hostA)
	underlay(t, hostA, hostB, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	const mtu = 1450 // flannel gives pods the VTEP's MTU
	newBridge(t, hostA, "cni0")
	newBridge(t, hostB, "cni0")
	hostA.Addr(t, "cni0", "203.0.113.1/25")
	hostB.Addr(t, "cni0", "203.0.113.129/25")
	podA := container(t, hostA, "cni0", "vethpod", mtu, "203.0.113.2/25")
	podB := container(t, hostB, "cni0", "vethpod", mtu, "203.0.113.130/25")
	podA.Route(t, "203.0.113.128/25", "203.0.113.1")
	podB.Route(t, "203.0.113.0/25", "203.0.113.129")
	for _, h := range []*testnet.NS{hostA, hostB} {
		h.SetSysctl(t, "net.ipv4.ip_forward", "1")
	}

	d := startTopo(t, hostA, map[string]*testnet.NS{"vx": hostA}, "--tap", "vx", "--vni", "1",
		"--learning=false", "--addr", "198.51.100.0/32", "--up")
	testnet.KernelVXLAN(t, hostB, testnet.VXLANOpts{Name: "vx", VNI: 1, Local: "192.0.2.2", Dev: "ul0",
		NoLearning: true, Addr: "198.51.100.128/32"})
	macA, macB := macOf(t, hostA, "vx"), macOf(t, hostB, "vx")
	if mtuA := linkMTU(t, hostA, "vx"); mtuA != mtu {
		t.Errorf("vxland's TAP MTU %d, want %d", mtuA, mtu)
	}

	// What flanneld programs on each host for the other one.
	hostA.Exec(t, "ip", "route", "add", "203.0.113.128/25", "via", "198.51.100.128", "dev", "vx", "onlink")
	hostA.Exec(t, "ip", "neigh", "add", "198.51.100.128", "lladdr", macB, "dev", "vx", "nud", "permanent")
	d.ctl(t, "fdb", "add", macB, "dev", "vx", "dst", "192.0.2.2")
	hostB.Exec(t, "ip", "route", "add", "203.0.113.0/25", "via", "198.51.100.0", "dev", "vx", "onlink")
	hostB.Exec(t, "ip", "neigh", "add", "198.51.100.0", "lladdr", macA, "dev", "vx", "nud", "permanent")
	hostB.Exec(t, "bridge", "fdb", "add", macA, "dev", "vx", "dst", "192.0.2.1")

	podA.Ping(t, "203.0.113.130", 3)
	podB.Ping(t, "203.0.113.2", 3)
	testnet.TCPTransfer(t, podA, podB, "203.0.113.130", 4<<20)
	testnet.TCPTransfer(t, podB, podA, "203.0.113.2", 4<<20)

	// The tables are exactly what was programmed: no learned entries, no
	// flood entry on vxland's side.
	out := d.ctl(t, "fdb", "show", "dev", "vx")
	if !hasLine(out, macB, "dst 192.0.2.2") {
		t.Errorf("vxland's FDB lacks the static entry for B's VTEP:\n%s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line != "" && !strings.Contains(line, macB) {
			t.Errorf("vxland's FDB has an entry that nobody programmed: %q", line)
		}
	}
	if st := d.stats(t); st["fdb_learned"] != 0 {
		t.Errorf("--learning=false learned %d entries", st["fdb_learned"])
	}
	kout := hostB.Exec(t, "bridge", "fdb", "show", "dev", "vx")
	if !hasLine(kout, macA, "dst 192.0.2.1") {
		t.Errorf("the kernel VTEP lost the static entry for A's VTEP:\n%s", kout)
	}
	d.stop(t)
}
