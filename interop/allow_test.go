package interop

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/vxland/vxland/internal/testnet"
)

// TestAllowRemote runs vxland with --allow-remote covering one of two
// kernel peers. The allowed peer works as usual. Everything the other
// sends is dropped and counted (rx_not_allowed) before vxland reads it:
// its MAC is never learned, no frame of it reaches the TAP (so the TAP's
// stack never answers it, and nothing is flooded in reply), and its ping
// goes unanswered.
func TestAllowRemote(t *testing.T) {
	testnet.RequireRoot(t)
	a, b, c := threeHosts(t)
	d := startVxland(t, a, "vxt0", "--vni", "40", "--remote", "192.0.2.2", "--allow-remote", "192.0.2.0/24",
		"--addr", "203.0.113.1/24", "--up")
	a.Ping(t, "203.0.113.2", 2)
	b.Ping(t, "203.0.113.1", 2)
	bMAC, cMAC := macOf(t, b, "vxlan0"), macOf(t, c, "vxlan0")
	if out := d.ctl(t, "fdb", "show", "dev", "vxt0"); !hasLine(out, bMAC, "dst 192.0.2.2") {
		t.Errorf("the allowed peer b (%s) was not learned:\n%s", bMAC, out)
	}

	tap := a.Capture(t, "vxt0", "")
	primeCapture(t, tap, func() { a.TryPing("203.0.113.2", 1) }, anyPacket)
	before := d.stats(t)
	if out, err := c.TryPing("203.0.113.1", 2); err == nil {
		t.Errorf("the disallowed peer c got an answer:\n%s", out)
	}
	// c's ARP requests were sent (its ping failed after them): once
	// rx_not_allowed has counted them, vxland has handled them.
	testnet.Eventually(t, 5*time.Second, func() error {
		if got := d.stats(t)["rx_not_allowed"] - before["rx_not_allowed"]; got == 0 {
			return errorf("rx_not_allowed has not counted c's datagrams")
		}
		return nil
	})
	after := d.stats(t)
	for _, k := range []string{"rx_short", "rx_no_i_flag", "rx_unknown_vni", "rx_reserved_bits", "rx_own_mac",
		"rx_invalid_source_mac", "rx_learn_conflict", "rx_ecn_drop", "rx_inner_short", "fdb_learned", "fdb_migrated"} {
		if after[k] != before[k] {
			t.Errorf("%s moved from %d to %d: c's datagrams were read", k, before[k], after[k])
		}
	}
	cHW, _ := net.ParseMAC(cMAC)
	for _, p := range tap.Stop() {
		if eth, ok := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); ok &&
			(bytes.Equal(eth.SrcMAC, cHW) || bytes.Equal(eth.DstMAC, cHW)) {
			t.Errorf("a frame from or to the disallowed peer c crossed the TAP: %v", gopacket.LayerDump(eth))
		}
	}
	out := d.ctl(t, "fdb", "show", "dev", "vxt0")
	if strings.Contains(out, cMAC) || strings.Contains(out, "198.51.100.2") {
		t.Errorf("the disallowed peer c was learned:\n%s", out)
	}
	if !hasLine(out, bMAC, "dst 192.0.2.2") {
		t.Errorf("the allowed peer b was forgotten:\n%s", out)
	}
	a.Ping(t, "203.0.113.2", 2) // b still works
	d.stop(t)
}

// TestAllowRemoteRefused: a --remote outside --allow-remote would never be
// heard from; vxland refuses to start, with one line naming both.
func TestAllowRemoteRefused(t *testing.T) {
	testnet.RequireRoot(t)
	a := testnet.NewNS(t)
	expectSetupError(t, a, []string{"remote 198.51.100.2 is outside allow_remote", "192.0.2.0/24"},
		"--vni", "40", "--tap", "vxt0", "--remote", "198.51.100.2", "--allow-remote", "192.0.2.0/24")
}

// TestAllowRemoteReload changes allow_remote with vxlanctl reload: the
// change applies in place (the VNI is not re-created, the allowed peer's
// learned entry stays), a peer taken off the list is dropped from the next
// datagram on, and one put back on is heard again.
func TestAllowRemoteReload(t *testing.T) {
	testnet.RequireRoot(t)
	a, b, c := threeHosts(t)
	file := filepath.Join(t.TempDir(), "vxland.toml")
	write := func(allow string) {
		t.Helper()
		cfg := "version = 1\n[[vni]]\nid = 40\ntap = \"vxt0\"\nremote = [\"192.0.2.2\"]\naddr = [\"203.0.113.1/24\"]\nup = true\n" +
			"allow_remote = [" + allow + "]\n"
		if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`"192.0.2.0/24", "198.51.100.2"`)
	d := startTopo(t, a, map[string]*testnet.NS{"vxt0": a}, "--config", file)
	b.Ping(t, "203.0.113.1", 2)
	c.Ping(t, "203.0.113.1", 2)
	bMAC := macOf(t, b, "vxlan0")

	write(`"192.0.2.0/24"`)
	if out := d.ctl(t, "reload"); !strings.Contains(out, "changed in place vni 40") {
		t.Errorf("reload summary %q: want vni 40 changed in place", out)
	}
	before := d.stats(t)["rx_not_allowed"]
	if out, err := c.TryPing("203.0.113.1", 2); err == nil {
		t.Errorf("c, taken off allow_remote, still got an answer:\n%s", out)
	}
	testnet.Eventually(t, 5*time.Second, func() error {
		if d.stats(t)["rx_not_allowed"] == before {
			return errorf("rx_not_allowed has not counted c's datagrams")
		}
		return nil
	})
	if out := d.ctl(t, "fdb", "show", "dev", "vxt0"); !hasLine(out, bMAC, "dst 192.0.2.2") {
		t.Errorf("b's learned entry did not survive the reload:\n%s", out)
	}
	b.Ping(t, "203.0.113.1", 2)

	write(`"192.0.2.0/24", "198.51.100.0/24"`)
	d.ctl(t, "reload")
	c.Ping(t, "203.0.113.1", 2)
	d.stop(t)
}
