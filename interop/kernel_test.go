// Package interop tests vxland against the Linux kernel's own vxlan driver in
// network namespaces the tests create. The tests need root.
package interop

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vxland/vxland/internal/testnet"
)

// TestKernelPeer runs vxland in one namespace and an unmodified kernel vxlan
// device in another, on the IANA port and on Linux's legacy port, with the
// virtio-net checksum hand-over and with software checksum completion. The
// kernel peer keeps its default offloads, so the TCP frames it sends arrive
// with partial checksums (see docs/kernel-notes.md).
func TestKernelPeer(t *testing.T) {
	testnet.RequireRoot(t)
	for _, tc := range []struct {
		port    uint16
		offload bool
	}{
		{4789, true},
		{8472, true},
		{4789, false},
	} {
		t.Run(fmt.Sprintf("port%d/offload=%v", tc.port, tc.offload), func(t *testing.T) {
			a, b := testnet.NewNS(t), testnet.NewNS(t)
			underlay(t, a, b, "ul0", "192.0.2.1/24", "192.0.2.2/24")
			kdev := testnet.KernelVXLAN(t, b, testnet.VXLANOpts{
				VNI: 40, Remote: "192.0.2.1", Local: "192.0.2.2", Dev: "ul0",
				DstPort: tc.port, Addr: "203.0.113.2/24",
			})
			d := startVxland(t, a, "vxt0", "--vni", "40", "--remote", "192.0.2.2",
				"--dstport", fmt.Sprint(tc.port), "--addr", "203.0.113.1/24", "--up",
				fmt.Sprintf("--offload=%v", tc.offload))

			a.Ping(t, "203.0.113.2", 3)
			b.Ping(t, "203.0.113.1", 3)
			testnet.TCPTransfer(t, a, b, "203.0.113.2", 8<<20)
			testnet.TCPTransfer(t, b, a, "203.0.113.1", 8<<20)

			// Learning in both directions: the kernel learned vxland's TAP
			// MAC at 192.0.2.1, vxland learned the kernel device's MAC at
			// 192.0.2.2.
			tapMAC := macOf(t, a, "vxt0")
			kfdb := b.Exec(t, "bridge", "fdb", "show", "dev", kdev)
			if !hasLine(kfdb, tapMAC, "dst 192.0.2.1") {
				t.Errorf("kernel did not learn vxland's MAC %s at 192.0.2.1:\n%s", tapMAC, kfdb)
			}
			kMAC := macOf(t, b, kdev)
			vfdb := d.ctl(t, "fdb", "show", "dev", "vxt0")
			if !hasLine(vfdb, kMAC, "dst 192.0.2.2") {
				t.Errorf("vxland did not learn the kernel's MAC %s at 192.0.2.2:\n%s", kMAC, vfdb)
			}
			if !hasLine(vfdb, "00:00:00:00:00:00", "dst 192.0.2.2", "permanent") {
				t.Errorf("--remote is not a permanent all-zeros entry:\n%s", vfdb)
			}
			st := d.stats(t)
			if st["fdb_learned"] == 0 || st["rx_frames"] == 0 || st["tx_frames"] == 0 {
				t.Errorf("counters do not show the traffic: %v", st)
			}
			d.stop(t)
		})
	}
}

// hasLine reports whether some line of out contains every one of parts.
func hasLine(out string, parts ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		ok := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
