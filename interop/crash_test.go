package interop

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vxland/vxland/internal/testnet"
)

// kill -9 at any moment leaves nothing that blocks a restart: the daemon is
// killed 20 times in a row while a kernel peer floods it with UDP through
// the tunnel, and each time a new one starts on the same TAP name, control
// socket and port, and forwards.
func TestKill9Restart(t *testing.T) {
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	underlay(t, a, b, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	testnet.KernelVXLAN(t, b, testnet.VXLANOpts{Name: "vxlan0", VNI: 40, Remote: "192.0.2.1", Local: "192.0.2.2", Dev: "ul0", Addr: "203.0.113.2/24"})
	rundir := t.TempDir()
	args := []string{"--tap", "vxk0", "--vni", "40", "--remote", "192.0.2.2", "--local", "192.0.2.1",
		"--addr", "203.0.113.1/24", "--up"}
	taps := map[string]*testnet.NS{"vxk0": a}

	// Heavy traffic for the whole test: the peer floods the daemon's TAP
	// address with UDP (iperf3 -u), whether a daemon is there or not.
	d := startTopoIn(t, a, rundir, taps, args...)
	a.Start(t, "iperf3", "-s", "-B", "203.0.113.1")
	testnet.Eventually(t, 5*time.Second, func() error {
		if out, _ := a.Try("ss", "-ltn", "sport", "=", ":5201"); !strings.Contains(out, "5201") {
			return fmt.Errorf("iperf3 server not listening yet")
		}
		return nil
	})
	b.Start(t, "iperf3", "-c", "203.0.113.1", "-u", "-b", "2G", "-l", "1400", "-t", "600")

	for i := range 20 {
		// The flood reaches the daemon: its receive counter moves.
		before := d.stats(t)["rx_datagrams"]
		testnet.Eventually(t, 5*time.Second, func() error {
			if n := d.stats(t)["rx_datagrams"]; n < before+100 {
				return fmt.Errorf("round %d: rx_datagrams %d, want > %d", i, n, before+100)
			}
			return nil
		})
		if err := d.proc.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := d.proc.Wait(5 * time.Second); err == nil {
			t.Fatalf("round %d: vxland exited cleanly after SIGKILL?", i)
		}
		d = startTopoIn(t, a, rundir, taps, args...)
		b.Ping(t, "203.0.113.1", 1)
	}
	d.stop(t) // and nothing is left: no TAP, an empty run directory
}
