package interop

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vxland/vxland/internal/testnet"
)

// largeTransfer is the size of the bulk TCP transfers: large enough for
// TSO super-frames, UDP GSO/GRO trains and the coalescer's 64 KB merges to
// run for many windows, small enough to keep each direction to a few
// seconds.
const largeTransfer = 64 << 20

// TestVXLANDToVXLAND runs vxland on both ends of a tunnel: ping both ways
// and a 64 MiB TCP transfer each way, verified byte for byte, with the
// virtio-net offloads on both sides, off on both sides, and on one side
// only (where a GSO super-frame from one end must reach a plain TAP on the
// other as MTU-sized frames, and plain frames must coalesce on the other
// way).
func TestVXLANDToVXLAND(t *testing.T) {
	testnet.RequireRoot(t)
	for _, tc := range []struct{ a, b bool }{{true, true}, {false, false}, {true, false}} {
		t.Run(fmt.Sprintf("offload=%v-%v", tc.a, tc.b), func(t *testing.T) {
			a, b := testnet.NewNS(t), testnet.NewNS(t)
			underlay(t, a, b, "ul0", "192.0.2.1/24", "192.0.2.2/24")
			da := startVxland(t, a, "vxa0", "--vni", "40", "--remote", "192.0.2.2", "--local", "192.0.2.1",
				"--addr", "203.0.113.1/24", "--up", fmt.Sprintf("--offload=%v", tc.a))
			db := startVxland(t, b, "vxb0", "--vni", "40", "--remote", "192.0.2.1", "--local", "192.0.2.2",
				"--addr", "203.0.113.2/24", "--up", fmt.Sprintf("--offload=%v", tc.b))

			a.Ping(t, "203.0.113.2", 3)
			b.Ping(t, "203.0.113.1", 3)
			transfer(t, a, b, "203.0.113.2", largeTransfer, da, db)
			transfer(t, b, a, "203.0.113.1", largeTransfer, db, da)
			checkClean(t, da, db)
			checkBatching(t, da, tc.a, true)
			checkBatching(t, db, tc.b, true)
		})
	}
}

// TestLargeTransferKernel moves 64 MiB each way between vxland and the
// kernel's vxlan driver (default offloads: its TCP frames arrive with
// partial checksums, as TSO-sized trains), with vxland's offloads on and
// off.
func TestLargeTransferKernel(t *testing.T) {
	testnet.RequireRoot(t)
	for _, offload := range []bool{true, false} {
		t.Run(fmt.Sprintf("offload=%v", offload), func(t *testing.T) {
			a, b := testnet.NewNS(t), testnet.NewNS(t)
			underlay(t, a, b, "ul0", "192.0.2.1/24", "192.0.2.2/24")
			testnet.KernelVXLAN(t, b, testnet.VXLANOpts{
				VNI: 40, Remote: "192.0.2.1", Local: "192.0.2.2", Dev: "ul0", Addr: "203.0.113.2/24",
			})
			d := startVxland(t, a, "vxt0", "--vni", "40", "--remote", "192.0.2.2",
				"--addr", "203.0.113.1/24", "--up", fmt.Sprintf("--offload=%v", offload))

			a.Ping(t, "203.0.113.2", 2)
			transfer(t, a, b, "203.0.113.2", largeTransfer, d)
			transfer(t, b, a, "203.0.113.1", largeTransfer, d)
			checkClean(t, d)
			checkBatching(t, d, offload, false)
		})
	}
}

// transfer is testnet.TCPTransfer that, when the transfer fails, first logs
// what could explain it: both stacks' error, drop and retransmission
// counters and the daemons' counters (startVxland logs the latter again at
// cleanup, with the daemons' output).
func transfer(t *testing.T, client, server *testnet.NS, serverIP string, n int, ds ...*daemon) {
	t.Helper()
	res, err := testnet.TryTCPTransfer(client, server, serverIP, n)
	if err == nil {
		t.Logf("TCP %s -> %s: %d MiB verified in %v (%.0f Mbit/s)", client, serverIP, res.Bytes>>20,
			res.Duration.Round(1e6), float64(res.Bytes)*8/res.Duration.Seconds()/1e6)
		return
	}
	for _, ns := range []*testnet.NS{client, server} {
		t.Logf("%s: stack counters:\n%s", ns, troubleCounters(ns))
	}
	for _, d := range ds {
		if out, cerr := d.ctlTry("stats", "dev", d.tap); cerr == nil {
			t.Logf("vxland %s in %s:\n%s", d.tap, d.ns, out)
		}
	}
	t.Fatal(err)
}

// troubleCounters returns the non-zero nstat counters of ns that name an
// error, a drop, a checksum failure or a retransmission.
func troubleCounters(ns *testnet.NS) string {
	out, err := ns.Try("nstat", "-asz")
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[1] == "0" {
			continue
		}
		for _, k := range []string{"Err", "Drop", "Csum", "Retrans", "Lost", "Timeout", "Prune", "Overflow"} {
			if strings.Contains(f[0], k) {
				fmt.Fprintf(&b, "  %s %s\n", f[0], f[1])
				break
			}
		}
	}
	return b.String()
}

// troubleStats are the daemon counters that must stay at zero on a clean
// path: send and TAP write errors, refused super-frames, receive drops.
var troubleStats = []string{
	"tx_send_errors", "tx_bad_gso", "rx_tap_write_errors", "rx_invalid_source_mac",
	"rx_short", "rx_no_i_flag", "rx_reserved_bits", "rx_unknown_vni", "rx_own_mac",
	"rx_ecn_drop", "rx_learn_conflict", "rx_inner_short", "rx_not_allowed",
}

// checkClean fails the test if a daemon counted any of troubleStats.
func checkClean(t *testing.T, ds ...*daemon) {
	t.Helper()
	for _, d := range ds {
		st := d.stats(t)
		for _, k := range troubleStats {
			if st[k] != 0 {
				t.Errorf("vxland %s: %s = %d", d.tap, k, st[k])
			}
		}
	}
}

// checkBatching asserts that a daemon batched as its offload setting says.
// tx_messages counts send messages, so a UDP_SEGMENT train counts once:
// far fewer than tx_frames means UDP GSO carried the bulk traffic.
// rx_tap_writes counts writes with a virtio-net header: far fewer than
// rx_frames means the coalescer merged segments. Without offloads every
// frame is its own message and a plain write (rx_tap_writes stays 0).
// coalesce says whether the receive side is expected to merge: frames
// from a kernel peer arrive already segmented to the TAP's size, one TCP
// segment per GRO train, so only vxland peers are checked for it.
func checkBatching(t *testing.T, d *daemon, offload, coalesce bool) {
	t.Helper()
	st := d.stats(t)
	t.Logf("vxland %s: tx_frames %d tx_messages %d; rx_datagrams %d rx_frames %d rx_tap_writes %d",
		d.tap, st["tx_frames"], st["tx_messages"], st["rx_datagrams"], st["rx_frames"], st["rx_tap_writes"])
	if st["tx_frames"] == 0 || st["rx_frames"] == 0 {
		t.Fatalf("vxland %s moved no frames", d.tap)
	}
	if !offload {
		if st["tx_messages"] != st["tx_frames"] || st["rx_tap_writes"] != st["rx_frames"] {
			t.Errorf("vxland %s with --offload=false batched: tx_messages %d of %d frames, rx_tap_writes %d",
				d.tap, st["tx_messages"], st["tx_frames"], st["rx_tap_writes"])
		}
		return
	}
	if st["tx_messages"]*2 >= st["tx_frames"] {
		t.Errorf("vxland %s: UDP GSO did not engage: tx_messages %d for %d frames", d.tap, st["tx_messages"], st["tx_frames"])
	}
	if coalesce && st["rx_tap_writes"]*2 >= st["rx_frames"] {
		t.Errorf("vxland %s: the coalescer did not engage: rx_tap_writes %d for %d frames", d.tap, st["rx_tap_writes"], st["rx_frames"])
	}
}
