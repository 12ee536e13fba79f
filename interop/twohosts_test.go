package interop

import (
	"testing"

	"github.com/vxland/vxland/internal/testnet"
)

// TestTwoDaemonsOneHost runs two daemons with identical flags apart from
// their addresses (same TAP name, same VNI, default MAC) in two namespaces
// of one host, as the Linux VXLAN guides model two hosts, and moves ping
// and TCP between them. Each must derive its own MAC: with the same one,
// each side drops the other's frames as its own (rx_own_mac).
func TestTwoDaemonsOneHost(t *testing.T) {
	testnet.RequireRoot(t)
	h1, h2 := testnet.NewNS(t), testnet.NewNS(t)
	underlay(t, h1, h2, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	d1 := startVxland(t, h1, "vx0", "--vni", "40", "--remote", "192.0.2.2", "--local", "192.0.2.1",
		"--addr", "203.0.113.1/24", "--up")
	d2 := startVxland(t, h2, "vx0", "--vni", "40", "--remote", "192.0.2.1", "--local", "192.0.2.2",
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

	// A restarted daemon in the same namespace comes back with its MAC.
	d1.stop(t)
	startVxland(t, h1, "vx0", "--vni", "40", "--remote", "192.0.2.2", "--local", "192.0.2.1",
		"--addr", "203.0.113.1/24", "--up")
	if again := macOf(t, h1, "vx0"); again != m1 {
		t.Errorf("MAC after restart %s, was %s", again, m1)
	}
	h2.Ping(t, "203.0.113.1", 3)
}
