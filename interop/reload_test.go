package interop

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vxland/vxland/internal/testnet"
)

// reloadConfig is a --config file for TestReload: VNI 100 to peer p,
// VNI 200 to remote200, and VNI 300 when with300.
func reloadConfig(remote200 string, with300 bool) string {
	s := `version = 1
[[vni]]
id = 100
tap = "vxa"
remote = ["192.0.2.2"]
addr = ["203.0.113.1/28"]
up = true

[[vni]]
id = 200
tap = "vxb"
remote = ["` + remote200 + `"]
addr = ["203.0.113.17/28"]
up = true
`
	if with300 {
		s += `
[[vni]]
id = 300
tap = "vxc"
remote = ["192.0.2.2"]
addr = ["203.0.113.33/28"]
up = true
`
	}
	return s
}

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// TestReload: `vxlanctl reload` adds a VNI and changes the remote of
// another while a 20 pings/s stream runs on a third, unchanged VNI; not
// one ping is lost, the unchanged VNI keeps its learned entries, the new
// VNI forwards and the changed remote takes effect. A broken file is then
// refused (by vxlanctl reload and by SIGHUP) with the old configuration
// still serving.
func TestReload(t *testing.T) {
	testnet.RequireRoot(t)
	h, p, q := testnet.NewNS(t), testnet.NewNS(t), testnet.NewNS(t)
	underlay(t, h, p, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	underlay(t, h, q, "ul1", "198.51.100.1/24", "198.51.100.2/24")
	for _, k := range []testnet.VXLANOpts{
		{Name: "vx100", VNI: 100, Remote: "192.0.2.1", Local: "192.0.2.2", Dev: "ul0", Addr: "203.0.113.2/28"},
		{Name: "vx200", VNI: 200, Remote: "192.0.2.1", Local: "192.0.2.2", Dev: "ul0", Addr: "203.0.113.18/28"},
		{Name: "vx300", VNI: 300, Remote: "192.0.2.1", Local: "192.0.2.2", Dev: "ul0", Addr: "203.0.113.34/28"},
	} {
		testnet.KernelVXLAN(t, p, k)
	}
	// The new remote of VNI 200 answers on another address, so a reply
	// from it proves where the frames went.
	testnet.KernelVXLAN(t, q, testnet.VXLANOpts{Name: "vx200", VNI: 200, Remote: "198.51.100.1",
		Local: "198.51.100.2", Dev: "ul1", Addr: "203.0.113.19/28"})

	file := filepath.Join(t.TempDir(), "vxland.toml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(reloadConfig("192.0.2.2", false))
	d := startTopo(t, h, map[string]*testnet.NS{"vxa": h, "vxb": h}, "--config", file)
	h.Ping(t, "203.0.113.2", 2)
	h.Ping(t, "203.0.113.18", 2)
	peerMAC := macOf(t, p, "vx100")
	if out := d.ctl(t, "fdb", "show", "dev", "vxa"); !strings.Contains(out, peerMAC) {
		t.Fatalf("VNI 100 did not learn %s:\n%s", peerMAC, out)
	}

	// 20 pings/s on VNI 100, across the reload.
	const count = 80
	ping := h.Start(t, "ping", "-n", "-i", "0.05", "-c", strconv.Itoa(count), "-W", "1", "203.0.113.2")
	ping.WaitOutput(t, "icmp_seq=5 ", 5*time.Second)

	write(reloadConfig("198.51.100.2", true))
	out := d.ctl(t, "reload")
	t.Logf("vxlanctl reload: %s", strings.TrimSpace(out))
	for _, want := range []string{"added vni 300", "vni 200"} {
		if !strings.Contains(out, want) {
			t.Errorf("reload summary %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "vni 100") {
		t.Errorf("reload touched the unchanged VNI 100: %q", out)
	}
	if err := ping.Wait(2 * count * 50 * time.Millisecond * 3); err != nil {
		t.Fatalf("ping: %v\n%s", err, ping.Output())
	}
	m := pingSummary.FindStringSubmatch(ping.Output())
	if m == nil {
		t.Fatalf("no ping summary:\n%s", ping.Output())
	}
	if m[1] != strconv.Itoa(count) || m[2] != m[1] {
		t.Errorf("VNI 100 lost pings across the reload: %s transmitted, %s received", m[1], m[2])
	}
	if out := d.ctl(t, "fdb", "show", "dev", "vxa"); !strings.Contains(out, peerMAC) {
		t.Errorf("VNI 100 lost its learned entry for %s:\n%s", peerMAC, out)
	}
	h.Ping(t, "203.0.113.34", 2) // the added VNI
	h.Ping(t, "203.0.113.19", 2) // VNI 200's new remote
	if out := d.ctl(t, "fdb", "show", "dev", "vxb"); !strings.Contains(out, "dst 198.51.100.2") || strings.Contains(out, "00:00:00:00:00:00 dst 192.0.2.2") {
		t.Errorf("VNI 200's flood list after the reload:\n%s", out)
	}

	// A broken file changes nothing.
	write("version = 1\n[[vni]]\nid = 100\nremote = [\"192.0.2\"]\n")
	out, err := d.ctlTry("reload")
	if err == nil || !strings.Contains(out, "192.0.2") {
		t.Errorf("reload of a broken file: err %v, output %q", err, out)
	}
	if err := d.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	d.proc.WaitOutput(t, "SIGHUP: reload of", 5*time.Second)
	h.Ping(t, "203.0.113.2", 2)
	h.Ping(t, "203.0.113.34", 2)
	if !linkExists(h, "vxc") {
		t.Error("a refused reload removed VNI 300's TAP")
	}

	// A reload that removes a VNI removes its TAP and control socket.
	write(reloadConfig("198.51.100.2", false))
	if out := d.ctl(t, "reload"); !strings.Contains(out, "removed vni 300") {
		t.Errorf("reload summary %q lacks the removal", out)
	}
	if linkExists(h, "vxc") {
		t.Error("TAP vxc still exists after its VNI was removed")
	}
	if _, err := os.Stat(filepath.Join(d.rundir, "netns", h.Name, "vxc.sock")); err == nil {
		t.Error("control socket of the removed VNI is still there")
	}
	if _, err := os.Stat(filepath.Join(d.rundir, "netns", h.Name, "vxa.sock")); err != nil {
		t.Errorf("control socket of a kept VNI: %v", err)
	}
	h.Ping(t, "203.0.113.2", 2)
}
