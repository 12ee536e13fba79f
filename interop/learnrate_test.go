package interop

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/vxland/vxland/internal/testnet"
)

// --learn-rate bounds how fast a flood of random source MACs changes the
// forwarding table: with a limit of 20/s, 600 frames from distinct sources
// sent at once teach at most a second's burst (and what the time taken
// earns); the rest are counted as fdb_learn_limited, and every frame is
// still delivered.
func TestLearnRate(t *testing.T) {
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	underlay(t, a, b, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	d := startVxland(t, a, "vxr0", "--vni", "40", "--remote", "192.0.2.2", "--learn-rate", "20",
		"--addr", "203.0.113.1/24", "--up")
	own, err := net.ParseMAC(macOf(t, a, "vxr0"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 600
	frames := make([][]byte, n)
	for i := range frames {
		src := net.HardwareAddr{0x02, 0x77, 0, 0, byte(i >> 8), byte(i)}
		frames[i] = append(vxlanHeader(0x08, 40, 0), innerUDP(t, own, src, 0, []byte("learn"))...)
	}
	began := time.Now()
	sendDatagrams(t, b, "192.0.2.1", 0, frames...)
	var st map[string]uint64
	testnet.Eventually(t, 10*time.Second, func() error {
		st = d.stats(t)
		if st["rx_frames"] < n {
			return fmt.Errorf("rx_frames %d, want %d delivered", st["rx_frames"], n)
		}
		return nil
	})
	took := time.Since(began)
	maxLearned := uint64(20 + 20*took.Seconds() + 1)
	if st["fdb_learned"] > maxLearned || st["fdb_learned"] < 20 {
		t.Errorf("fdb_learned %d in %v, want 20 to %d", st["fdb_learned"], took, maxLearned)
	}
	if st["fdb_learned"]+st["fdb_learn_limited"] != n {
		t.Errorf("fdb_learned %d + fdb_learn_limited %d, want %d", st["fdb_learned"], st["fdb_learn_limited"], n)
	}
}
