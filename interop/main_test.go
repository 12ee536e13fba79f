package interop

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/vxland/vxland/internal/testnet"
)

// Binaries under test, built once by TestMain.
var vxlandBin, vxlanctlBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vxland-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	vxlandBin = filepath.Join(dir, "vxland")
	vxlanctlBin = filepath.Join(dir, "vxlanctl")
	for bin, pkg := range map[string]string{vxlandBin: "../cmd/vxland", vxlanctlBin: "../cmd/vxlanctl"} {
		out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := runMain(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// runMain is testnet.Main without its os.Exit, so TestMain can clean up.
func runMain(m *testing.M) int {
	if removed, err := testnet.Sweep(); err == nil && len(removed) > 0 {
		fmt.Fprintf(os.Stderr, "removed stale namespaces: %s\n", strings.Join(removed, " "))
	}
	return m.Run()
}

// daemon is a vxland process running in a test namespace; its TAPs may
// live in other namespaces.
type daemon struct {
	ns     *testnet.NS
	proc   *testnet.Proc
	tap    string                 // the first TAP, for stats
	taps   map[string]*testnet.NS // every TAP and the namespace it is created in
	rundir string
}

// startVxland runs vxland in ns with a TAP named tap in the same namespace
// and waits until its control socket answers. args are the remaining flags.
func startVxland(t *testing.T, ns *testnet.NS, tap string, args ...string) *daemon {
	t.Helper()
	return startTopo(t, ns, map[string]*testnet.NS{tap: ns}, append([]string{"--tap", tap}, args...)...)
}

// ctlTry runs vxlanctl against this daemon.
// It names the daemon's namespace with -n, as `bridge -n` does: the
// default control sockets are scoped to the daemon's network namespace.
func (d *daemon) ctlTry(args ...string) (string, error) {
	cmd := exec.Command(vxlanctlBin, append([]string{"-n", d.ns.Name}, args...)...)
	cmd.Env = append(os.Environ(), "VXLAND_RUNDIR="+d.rundir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vxlanctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// ctl runs vxlanctl and fails the test if it fails.
func (d *daemon) ctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := d.ctlTry(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var statLine = regexp.MustCompile(`^\s*([a-z0-9_]+):?\s+(\d+)\s*$`)

// stats returns the counters of the daemon's first TAP by name.
func (d *daemon) stats(t *testing.T) map[string]uint64 {
	t.Helper()
	return d.statsOf(t, d.tap)
}

// statsOf returns the counters vxlanctl stats shows for dev, by name: the
// device's own and those of the socket it shares.
func (d *daemon) statsOf(t *testing.T, dev string) map[string]uint64 {
	t.Helper()
	out := d.ctl(t, "stats", "dev", dev)
	m := map[string]uint64{}
	for _, line := range strings.Split(out, "\n") {
		if s := statLine.FindStringSubmatch(line); s != nil {
			v, _ := strconv.ParseUint(s[2], 10, 64)
			m[s[1]] = v
		}
	}
	if len(m) == 0 {
		t.Fatalf("no counters in vxlanctl stats output:\n%s", out)
	}
	return m
}

var etherRE = regexp.MustCompile(`link/ether ([0-9a-f:]{17})`)

// macOf returns the MAC address of dev in ns.
func macOf(t *testing.T, ns *testnet.NS, dev string) string {
	t.Helper()
	out := ns.Exec(t, "ip", "link", "show", dev)
	m := etherRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no MAC in `ip link show %s`:\n%s", dev, out)
	}
	return m[1]
}

// underlay links two namespaces with a veth pair named ifname on both sides
// and addresses them.
func underlay(t *testing.T, a, b *testnet.NS, ifname, aCIDR, bCIDR string) {
	t.Helper()
	testnet.Link(t, a, ifname, b, ifname)
	a.Addr(t, ifname, aCIDR)
	b.Addr(t, ifname, bCIDR)
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// awaitSentinel waits until each capture has seen a packet containing
// sentinel: a frame or datagram a test sends after the ones it counts or
// expects to be dropped, along the same path (same socket, same flow, same
// loop), which keeps their order. Once it is there, whatever was sent
// before it has arrived too, or never will: a negative check needs no
// sleep.
func awaitSentinel(t *testing.T, sentinel []byte, cps ...*testnet.Capture) {
	t.Helper()
	for _, cp := range cps {
		cp.Wait(5*time.Second, func(p gopacket.Packet) bool { return bytes.Contains(p.Data(), sentinel) })
	}
}

// primeCapture calls send until the capture shows a packet that match
// accepts (a VXLAN datagram when match is nil), so that the traffic a test
// sends next is not lost while tcpdump's socket starts.
func primeCapture(t *testing.T, cp *testnet.Capture, send func(), match func(gopacket.Packet) bool) {
	t.Helper()
	if match == nil {
		match = func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeVXLAN) != nil }
	}
	testnet.Eventually(t, 5*time.Second, func() error {
		for _, p := range cp.Packets() {
			if match(p) {
				return nil
			}
		}
		send()
		return errorf("capture has not seen the priming packet yet")
	})
}
