package interop

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vxland/vxland/internal/testnet"
)

// startShared runs vxland in ns with run directory rundir (shared with
// other daemons) and a TAP vx0 in ns, and waits until it answers.
func startShared(t *testing.T, ns *testnet.NS, rundir string, args ...string) *daemon {
	t.Helper()
	return startTopoIn(t, ns, rundir, map[string]*testnet.NS{"vx0": ns}, append([]string{"--tap", "vx0"}, args...)...)
}

// TestTwoDaemonsOneHost runs two daemons with identical flags apart from
// their addresses (same TAP name, same VNI, default MAC, default control
// socket, one run directory) in two namespaces of one host, as the Linux
// VXLAN guides model two hosts, and moves ping and TCP between them. Each
// must derive its own MAC (with the same one, each side drops the other's
// frames as its own) and its own control socket, which `ip netns exec NS
// vxlanctl` and `vxlanctl -n NS` both reach.
func TestTwoDaemonsOneHost(t *testing.T) {
	testnet.RequireRoot(t)
	h1, h2 := testnet.NewNS(t), testnet.NewNS(t)
	underlay(t, h1, h2, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	rundir := t.TempDir()
	d1 := startShared(t, h1, rundir, "--vni", "40", "--remote", "192.0.2.2", "--local", "192.0.2.1",
		"--addr", "203.0.113.1/24", "--up")
	d2 := startShared(t, h2, rundir, "--vni", "40", "--remote", "192.0.2.1", "--local", "192.0.2.2",
		"--addr", "203.0.113.2/24", "--up")

	m1, m2 := macOf(t, h1, "vx0"), macOf(t, h2, "vx0")
	if m1 == m2 {
		t.Fatalf("both daemons chose MAC %s", m1)
	}
	h1.Ping(t, "203.0.113.2", 3)
	h2.Ping(t, "203.0.113.1", 3)
	transfer(t, h1, h2, "203.0.113.2", 8<<20, d1, d2)
	transfer(t, h2, h1, "203.0.113.1", 8<<20, d2, d1)
	checkClean(t, d1, d2)

	// Each daemon learned the other's TAP behind the other's address:
	// the answer tells which daemon replied.
	inside := h1.Exec(t, "env", "VXLAND_RUNDIR="+rundir, vxlanctlBin, "fdb", "show", "dev", "vx0")
	if !strings.Contains(inside, m2+" dst 192.0.2.2 self") {
		t.Errorf("ip netns exec %s vxlanctl fdb show dev vx0 did not reach that namespace's daemon:\n%s", h1, inside)
	}
	byName := d2.ctl(t, "fdb", "show", "dev", "vx0") // vxlanctl -n h2
	if !strings.Contains(byName, m1+" dst 192.0.2.1 self") {
		t.Errorf("vxlanctl -n %s fdb show dev vx0 did not reach that namespace's daemon:\n%s", h2, byName)
	}
	var js []struct {
		Dev      string            `json:"dev"`
		VNI      uint32            `json:"vni"`
		Counters map[string]uint64 `json:"counters"`
	}
	if err := json.Unmarshal([]byte(d2.ctl(t, "-j", "stats", "dev", "vx0")), &js); err != nil || len(js) != 1 ||
		js[0].Dev != "vx0" || js[0].VNI != 40 || js[0].Counters["tx_frames"] == 0 {
		t.Errorf("vxlanctl -j stats: %v %+v", err, js)
	}
	if out, err := (&daemon{ns: &testnet.NS{Name: "vxt-no-such-ns"}, rundir: rundir}).ctlTry("stats"); err == nil ||
		!strings.Contains(out, "-n vxt-no-such-ns") || !strings.Contains(err.Error(), "exit status 2") {
		t.Errorf("vxlanctl -n with a missing namespace: %v\n%s", err, out)
	}
}

// TestRestartKeepsMAC: a daemon restarted in the same namespace comes back
// with the MAC it had, so peers' neighbour and FDB entries stay right.
func TestRestartKeepsMAC(t *testing.T) {
	testnet.RequireRoot(t)
	h1, h2 := testnet.NewNS(t), testnet.NewNS(t)
	underlay(t, h1, h2, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	testnet.KernelVXLAN(t, h2, testnet.VXLANOpts{VNI: 40, Remote: "192.0.2.1", Local: "192.0.2.2", Dev: "ul0", Addr: "203.0.113.2/24"})
	args := []string{"--vni", "40", "--remote", "192.0.2.2", "--local", "192.0.2.1", "--addr", "203.0.113.1/24", "--up"}
	d := startVxland(t, h1, "vx0", args...)
	before := macOf(t, h1, "vx0")
	h1.Ping(t, "203.0.113.2", 2)
	d.stop(t)
	startVxland(t, h1, "vx0", args...)
	if after := macOf(t, h1, "vx0"); after != before {
		t.Errorf("MAC after restart %s, was %s", after, before)
	}
	h2.Ping(t, "203.0.113.1", 2) // the kernel peer's cached neighbour entry still holds
}
