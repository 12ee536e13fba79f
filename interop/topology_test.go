package interop

// Helpers for the topology tests (TestTopo*): multicast underlays, Linux
// bridges, TAPs in other namespaces, flannel-style routing, several VNIs in
// one daemon and IPv6 underlays. The tests themselves are in topo_*_test.go.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/vxland/vxland/internal/testnet"
)

// startTopo runs vxland in ns with exactly the given arguments (no --tap
// is added) and waits until the control socket of every TAP in taps
// answers. taps maps TAP names to the namespace each TAP should appear in.
func startTopo(t *testing.T, ns *testnet.NS, taps map[string]*testnet.NS, args ...string) *daemon {
	t.Helper()
	return startTopoIn(t, ns, t.TempDir(), taps, args...)
}

// startTopoIn is startTopo with the run directory given, so that several
// daemons can share one.
func startTopoIn(t *testing.T, ns *testnet.NS, rundir string, taps map[string]*testnet.NS, args ...string) *daemon {
	t.Helper()
	if len(taps) == 0 {
		t.Fatal("startTopo: no TAP to wait for")
	}
	first := ""
	for name := range taps {
		if first == "" || name < first {
			first = name
		}
	}
	d := &daemon{ns: ns, tap: first, taps: taps, rundir: rundir}
	cmd := append([]string{"env", "VXLAND_RUNDIR=" + rundir, vxlandBin}, args...)
	d.proc = ns.Start(t, cmd...)
	testnet.Eventually(t, 10*time.Second, func() error {
		if d.proc.Exited() {
			return testnet.Permanent(fmt.Errorf("vxland %s exited:\n%s", strings.Join(args, " "), d.proc.Output()))
		}
		for name := range taps {
			if _, err := d.ctlTry("stats", "dev", name); err != nil {
				return err
			}
		}
		return nil
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vxland %s output:\n%s", strings.Join(args, " "), d.proc.Output())
			for name := range taps {
				if out, err := d.ctlTry("stats", "dev", name); err == nil {
					t.Logf("vxland %s stats:\n%s", name, out)
				}
			}
		}
	})
	return d
}

// stop sends SIGTERM and checks that vxland exits with status 0 and
// leaves nothing behind: no TAP in the namespace it was created in (nor in
// the daemon's), and an empty run directory (no control socket).
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	if err := d.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.proc.Wait(5 * time.Second); err != nil {
		t.Fatalf("vxland after SIGTERM: %v\n%s", err, d.proc.Output())
	}
	for name, ns := range d.taps {
		for _, where := range []*testnet.NS{ns, d.ns} {
			if out, err := where.Try("ip", "link", "show", name); err == nil {
				t.Errorf("TAP %s still exists in %s after vxland exited:\n%s", name, where, out)
			}
		}
	}
	entries, _ := os.ReadDir(d.rundir)
	for _, e := range entries {
		t.Errorf("left behind in the run directory after SIGTERM: %s", e.Name())
	}
}

// vxlandRun is the result of a vxland that was expected to exit by itself.
type vxlandRun struct {
	code   int
	output string
}

// runVxlandOnce runs vxland in ns with args and waits for it to exit, which
// it should do at once (a usage or setup error). A vxland that is still
// running after 8 s started when it should have refused: the test fails.
// Control sockets left in the run directory fail the test too.
func runVxlandOnce(t *testing.T, ns *testnet.NS, args ...string) vxlandRun {
	t.Helper()
	rundir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	full := append([]string{"netns", "exec", ns.Name, "env", "VXLAND_RUNDIR=" + rundir, vxlandBin}, args...)
	cmd := exec.CommandContext(ctx, "ip", full...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("vxland %s was still running after 8 s; it should have refused to start. Output:\n%s",
			strings.Join(args, " "), out)
	}
	r := vxlandRun{output: string(out)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run vxland %s: %v", strings.Join(args, " "), err)
	}
	entries, _ := os.ReadDir(rundir)
	for _, e := range entries {
		t.Errorf("vxland %s left %s in its run directory", strings.Join(args, " "), e.Name())
	}
	return r
}

// expectSetupError runs vxland with args in ns and checks that it exits
// with status 2 and a message that mentions every string in want (case
// insensitive), without a Go panic or a usage dump.
func expectSetupError(t *testing.T, ns *testnet.NS, want []string, args ...string) string {
	t.Helper()
	r := runVxlandOnce(t, ns, args...)
	cmdline := "vxland " + strings.Join(args, " ")
	if r.code != 2 {
		t.Errorf("%s: exit status %d, want 2; output:\n%s", cmdline, r.code, r.output)
	}
	low := strings.ToLower(r.output)
	for _, w := range want {
		if !strings.Contains(low, strings.ToLower(w)) {
			t.Errorf("%s: message does not mention %q:\n%s", cmdline, w, r.output)
		}
	}
	if strings.Contains(r.output, "goroutine ") || strings.Contains(r.output, "panic:") {
		t.Errorf("%s: crashed instead of reporting the error:\n%s", cmdline, r.output)
	}
	if n := strings.Count(strings.TrimSpace(r.output), "\n") + 1; n > 4 {
		t.Errorf("%s: %d lines of output; a setup error should be a short message:\n%s", cmdline, n, r.output)
	}
	return r.output
}

// linkExists reports whether ifname exists in ns.
func linkExists(ns *testnet.NS, ifname string) bool {
	_, err := ns.Try("ip", "link", "show", "dev", ifname)
	return err == nil
}

// requireBridge skips (testnet.SkipOrFail) the test when the kernel cannot create Linux bridges
// (no bridge driver); it leaves no device behind.
func requireBridge(t *testing.T, ns *testnet.NS) {
	t.Helper()
	out, err := ns.Try("ip", "link", "add", "brprobe0", "type", "bridge")
	if err != nil {
		if strings.Contains(err.Error(), "Unknown device type") || strings.Contains(err.Error(), "not supported") {
			testnet.SkipOrFail(t, "the kernel has no Linux bridge driver (CONFIG_BRIDGE): %v", err)
		}
		t.Fatalf("probe for bridge support: %v\n%s", err, out)
	}
	ns.Exec(t, "ip", "link", "del", "brprobe0")
}

// requireIPv6 skips (testnet.SkipOrFail) the test when the kernel has IPv6 disabled.
func requireIPv6(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		testnet.SkipOrFail(t, "the kernel has no IPv6 (no /proc/sys/net/ipv6): %v", err)
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/disable_ipv6"); err == nil && strings.TrimSpace(string(b)) == "1" {
		testnet.SkipOrFail(t, "IPv6 is disabled on this machine (net.ipv6.conf.all.disable_ipv6=1)")
	}
}

// newBridge creates a Linux bridge in ns and sets it up.
func newBridge(t *testing.T, ns *testnet.NS, name string) {
	t.Helper()
	ns.Exec(t, "ip", "link", "add", name, "type", "bridge")
	ns.Exec(t, "ip", "link", "set", name, "up")
}

// container creates a namespace attached to bridge br in host by a veth
// pair (hostIf in host, enslaved to br; eth0 in the container), with MTU
// mtu on both ends and cidr on eth0.
func container(t *testing.T, host *testnet.NS, br, hostIf string, mtu int, cidr string) *testnet.NS {
	t.Helper()
	c := testnet.NewNS(t)
	testnet.Link(t, host, hostIf, c, "eth0")
	host.Exec(t, "ip", "link", "set", hostIf, "mtu", fmt.Sprint(mtu))
	c.Exec(t, "ip", "link", "set", "eth0", "mtu", fmt.Sprint(mtu))
	host.Exec(t, "ip", "link", "set", hostIf, "master", br)
	c.Addr(t, "eth0", cidr)
	return c
}

// linkMTU returns ifname's MTU in ns.
func linkMTU(t *testing.T, ns *testnet.NS, ifname string) int {
	t.Helper()
	return ns.LinkStats(t, ifname).MTU
}

// broadcastFrames builds n broadcast frames of the local experimental
// EtherType 0x88b5 from src, each carrying marker and its index.
func broadcastFrames(src []byte, marker []byte, n int) [][]byte {
	return framesTo([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, src, marker, n)
}

// framesTo builds n frames of the local experimental EtherType 0x88b5 from
// src to dst, each carrying marker and its index.
func framesTo(dst, src []byte, marker []byte, n int) [][]byte {
	var frames [][]byte
	for i := 0; i < n; i++ {
		f := append(append([]byte{}, dst...), src...)
		f = append(f, 0x88, 0xb5)
		f = append(f, marker...)
		frames = append(frames, append(f, byte(i)))
	}
	return frames
}

// countFrames counts captured frames (on a TAP, bridge or vxlan device:
// plain Ethernet) that contain marker anywhere.
func countFrames(pkts []gopacket.Packet, marker []byte) int {
	n := 0
	for _, p := range pkts {
		if bytes.Contains(p.Data(), marker) {
			n++
		}
	}
	return n
}

// vxlanByVNI counts captured VXLAN datagrams whose inner frame contains
// marker, by VNI.
func vxlanByVNI(pkts []gopacket.Packet, marker []byte) map[uint32]int {
	m := map[uint32]int{}
	for _, p := range pkts {
		if vx, ok := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN); ok && bytes.Contains(vx.Payload, marker) {
			m[vx.VNI]++
		}
	}
	return m
}

// anyPacket matches every captured packet (for primeCapture on a device
// that carries plain frames).
func anyPacket(gopacket.Packet) bool { return true }

// udpSockets lists the UDP sockets in ns bound to local port port, as ss
// prints them (one line each).
func udpSockets(t *testing.T, ns *testnet.NS, port int) []string {
	t.Helper()
	out := ns.Exec(t, "ss", "-H", "-u", "-a", "-n", fmt.Sprintf("sport = :%d", port))
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines
}
