package interop

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vxland/vxland/internal/testnet"
)

// A kernel peer floods vxland with small UDP packets through the tunnel;
// once the flood stops, vxland forwards both ways at once. (With
// SO_RXQ_OVFL set on the socket, a flood that overflowed the receive queue
// left the receive loop waiting with datagrams queued; make bench's UDP
// tests found it. Whether this flood overflows the queue depends on the
// machine; the counts are logged.)
func TestForwardAfterFlood(t *testing.T) {
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	underlay(t, a, b, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	testnet.KernelVXLAN(t, b, testnet.VXLANOpts{Name: "vxlan0", VNI: 40, Remote: "192.0.2.1", Local: "192.0.2.2", Dev: "ul0", Addr: "203.0.113.2/24"})
	d := startVxland(t, a, "vxf0", "--vni", "40", "--remote", "192.0.2.2", "--local", "192.0.2.1",
		"--addr", "203.0.113.1/24", "--up")
	b.Ping(t, "203.0.113.1", 1)
	a.Start(t, "iperf3", "-s", "-1", "-B", "203.0.113.1")
	testnet.Eventually(t, 5*time.Second, func() error {
		if out, _ := a.Try("ss", "-ltn", "sport", "=", ":5201"); !strings.Contains(out, "5201") {
			return fmt.Errorf("iperf3 server not listening yet")
		}
		return nil
	})
	b.Exec(t, "iperf3", "-c", "203.0.113.1", "-u", "-b", "0", "-l", "64", "-t", "4", "-P", "4")
	// The flood is over when iperf3 returns; whatever its last datagrams
	// were, vxland must be serving again: a ping each way.
	testnet.Eventually(t, 5*time.Second, func() error {
		if _, err := a.TryPing("203.0.113.2", 1); err != nil {
			return err
		}
		_, err := b.TryPing("203.0.113.1", 1)
		return err
	})
	st := d.stats(t)
	t.Logf("after the flood: rx_datagrams %d, rx_socket_overflow %d", st["rx_datagrams"], st["rx_socket_overflow"])
}
