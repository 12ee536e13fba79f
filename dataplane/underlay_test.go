package dataplane

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vxland/vxland/netio"
	"github.com/vxland/vxland/stats"
)

// TestReceiveQueuesSpreadFlows opens an underlay with two receive queues
// (SO_REUSEPORT) on 127.0.0.1 and sends from 32 source ports, four
// datagrams each: every source lands on one queue only, and both queues
// get some. A second underlay on the same port is refused, as a second
// daemon must be, not let into the group.
func TestReceiveQueuesSpreadFlows(t *testing.T) {
	local := netip.MustParseAddr("127.0.0.1")
	ul, err := openUnderlay(udpConfig{Bind: local, Local: local, TxSockets: 1, Queues: 2, Overflow: new(stats.Counter), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	if _, err := openUnderlay(udpConfig{Bind: local, Local: local, Port: ul.Port(), TxSockets: 1, Queues: 2, Overflow: new(stats.Counter), Logf: t.Logf}); !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("a second underlay on port %d: %v, want EADDRINUSE", ul.Port(), err)
	}
	const sources, each = 32, 4
	for i := 0; i < sources; i++ {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: local.AsSlice(), Port: int(ul.Port())})
		if err != nil {
			t.Fatal(err)
		}
		for range each {
			if _, err := c.Write([]byte("flow")); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
	}
	queueOf := map[netip.AddrPort]int{}
	perQueue := make([]int, 2)
	msgs := make([]netio.Datagram, defaultBatch)
	for i := range msgs {
		msgs[i].Buf = make([]byte, 64)
	}
	for q, r := range ul.Receivers() {
		ul.rx[q].file.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		for {
			n, err := r.Recv(msgs)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break // the queue is drained: everything was sent before
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs[:n] {
				if prev, ok := queueOf[m.Addr]; ok && prev != q {
					t.Fatalf("source %v on queues %d and %d", m.Addr, prev, q)
				}
				queueOf[m.Addr] = q
				perQueue[q]++
			}
		}
	}
	if perQueue[0]+perQueue[1] != sources*each || perQueue[0] == 0 || perQueue[1] == 0 {
		t.Errorf("datagrams per queue %v, want %d spread over both", perQueue, sources*each)
	}
}
