package interop

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vxland/vxland/internal/testnet"
)

// vniSeg is one VNI of TestTopoManyVNIs.
type vniSeg struct {
	vni     uint32
	tap     string // vxland's TAP, in its own namespace ns
	kdev    string // the kernel peer's device in the shared peer namespace
	local   string // vxland's overlay address (CIDR)
	peer    string // the kernel device's overlay address
	peerNet string // the kernel device's overlay address (CIDR)
	ns      *testnet.NS
}

// TestTopoManyVNIs runs three VNIs in one vxland process from a --config
// file: one UDP socket for all (same local address and port), each VNI's
// TAP in its own namespace. The peer is one namespace with three kernel
// vxlan devices on port 4789 with distinct VNIs. Traffic flows per VNI,
// and a VNI's broadcasts reach no other VNI.
func TestTopoManyVNIs(t *testing.T) {
	testnet.RequireRoot(t)
	h, p := testnet.NewNS(t), testnet.NewNS(t)
	underlay(t, h, p, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	segs := []*vniSeg{
		{vni: 100, tap: "vxa", kdev: "vx100", local: "203.0.113.1/28", peer: "203.0.113.2", peerNet: "203.0.113.2/28"},
		{vni: 200, tap: "vxb", kdev: "vx200", local: "203.0.113.17/28", peer: "203.0.113.18", peerNet: "203.0.113.18/28"},
		{vni: 300, tap: "vxc", kdev: "vx300", local: "203.0.113.33/28", peer: "203.0.113.34", peerNet: "203.0.113.34/28"},
	}
	taps := map[string]*testnet.NS{}
	var cfg strings.Builder
	cfg.WriteString("# TestTopoManyVNIs\nversion = 1\n")
	for _, s := range segs {
		s.ns = testnet.NewNS(t)
		taps[s.tap] = s.ns
		testnet.KernelVXLAN(t, p, testnet.VXLANOpts{Name: s.kdev, VNI: s.vni, Remote: "192.0.2.1",
			Local: "192.0.2.2", Dev: "ul0", Addr: s.peerNet})
		fmt.Fprintf(&cfg, "\n[[vni]]\nid = %d\ntap = %q\nnetns = %q\nremote = [\"192.0.2.2\"]\naddr = [%q]\nup = true\n",
			s.vni, s.tap, s.ns.Name, s.local)
	}
	file := filepath.Join(t.TempDir(), "vxland.toml")
	if err := os.WriteFile(file, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	const metricsAddr = "127.0.0.1:9477" // in h's own loopback
	d := startTopo(t, h, taps, "--config", file, "--metrics", metricsAddr)

	// One endpoint on port 4789 serves all three VNIs: one receive socket
	// per queue (one per CPU by default), not one per VNI.
	if socks := udpSockets(t, h, 4789); len(socks) != runtime.NumCPU() {
		t.Errorf("%d UDP sockets on port 4789, want %d (one per queue) shared by the three VNIs:\n%s", len(socks), runtime.NumCPU(), strings.Join(socks, "\n"))
	}
	// vxlanctl -j devs lists the three devices of the daemon.
	var devs []struct {
		Ifname string `json:"ifname"`
		VNI    uint32 `json:"vni"`
		Port   uint16 `json:"port"`
	}
	if out := d.ctl(t, "-j", "devs"); json.Unmarshal([]byte(out), &devs) != nil || len(devs) != len(segs) {
		t.Errorf("vxlanctl -j devs: want %d devices as a JSON array, got:\n%s", len(segs), out)
	} else {
		for i, s := range segs {
			if devs[i].Ifname != s.tap || devs[i].VNI != s.vni || devs[i].Port != 4789 {
				t.Errorf("vxlanctl -j devs: device %d is %+v, want %s vni %d port 4789", i, devs[i], s.tap, s.vni)
			}
		}
	}
	macs := map[string]string{}
	for _, s := range segs {
		if !linkExists(s.ns, s.tap) {
			t.Fatalf("TAP %s of VNI %d is not in its namespace %s", s.tap, s.vni, s.ns)
		}
		if linkExists(h, s.tap) {
			t.Errorf("TAP %s of VNI %d is in the daemon's namespace too", s.tap, s.vni)
		}
		m := macOf(t, s.ns, s.tap)
		if other, dup := macs[m]; dup {
			t.Errorf("TAPs %s and %s share the MAC %s", other, s.tap, m)
		}
		macs[m] = s.tap
	}

	for _, s := range segs {
		s.ns.Ping(t, s.peer, 2)
		p.Ping(t, stripPrefix(s.local), 2)
	}
	testnet.TCPTransfer(t, segs[0].ns, p, segs[0].peer, 2<<20)
	testnet.TCPTransfer(t, p, segs[2].ns, stripPrefix(segs[2].local), 2<<20)

	// Each VNI's table, through vxlanctl by TAP name, holds its own peer
	// and none of the others'.
	kmacs := map[uint32]string{}
	for _, s := range segs {
		kmacs[s.vni] = macOf(t, p, s.kdev)
	}
	for _, s := range segs {
		out := d.ctl(t, "fdb", "show", "dev", s.tap)
		if !hasLine(out, "00:00:00:00:00:00", "dst 192.0.2.2", "permanent") {
			t.Errorf("fdb show dev %s lacks the remote's flood entry:\n%s", s.tap, out)
		}
		for vni, m := range kmacs {
			has := hasLine(out, m, "dst 192.0.2.2")
			if vni == s.vni && !has {
				t.Errorf("fdb show dev %s (VNI %d) lacks its peer %s:\n%s", s.tap, s.vni, m, out)
			}
			if vni != s.vni && has {
				t.Errorf("fdb show dev %s (VNI %d) learned VNI %d's peer %s:\n%s", s.tap, s.vni, vni, m, out)
			}
		}
		if out := d.ctl(t, "stats", "dev", s.tap); !strings.Contains(out, "rx_frames") {
			t.Errorf("vxlanctl stats dev %s shows no counters:\n%s", s.tap, out)
		}
	}

	// Isolation: broadcasts written into VNI 100's TAP leave with VNI 100
	// only, reach the VNI 100 kernel device, and never show up on the other
	// TAPs or kernel devices.
	wire := p.Capture(t, "ul0", "udp dst port 4789")
	primeCapture(t, wire, func() { segs[0].ns.TryPing(segs[0].peer, 1) }, nil)
	type watch struct {
		name string
		cp   *testnet.Capture
		want bool
	}
	var watches []watch
	for i, s := range segs {
		kc := p.Capture(t, s.kdev, "")
		primeCapture(t, kc, func() { s.ns.TryPing(s.peer, 1) }, anyPacket)
		watches = append(watches, watch{name: "kernel " + s.kdev, cp: kc, want: i == 0})
		if i > 0 {
			tc := s.ns.Capture(t, s.tap, "")
			primeCapture(t, tc, func() { s.ns.TryPing(s.peer, 1) }, anyPacket)
			watches = append(watches, watch{name: "TAP " + s.tap, cp: tc})
		}
	}
	marker := []byte("vxland-vni-isolation-marker")
	const n = 5
	src := []byte{0x02, 0, 0, 0, 0, 0x42}
	sentinel := func(vni uint32) []byte { return []byte(fmt.Sprintf("vxland-vni-isolation-sentinel-%d", vni)) }
	// The broadcasts end with a sentinel of their flow (same addresses:
	// same transmit socket, same order): once it is on the wire and on
	// vx100, so is every broadcast before it, under whatever VNI it left.
	sendFrames(t, segs[0].ns, segs[0].tap, append(broadcastFrames(src, marker, n), broadcastFrames(src, sentinel(100), 1)...))
	awaitSentinel(t, sentinel(100), wire, watches[0].cp)
	// Then each other VNI sends a sentinel of its own through its TAP: it
	// reaches its kernel device after anything misdirected to that VNI,
	// and its TAP's capture is then past anything written to the TAP.
	for i, s := range segs[1:] {
		sendFrames(t, s.ns, s.tap, broadcastFrames(src, sentinel(s.vni), 1))
		awaitSentinel(t, sentinel(s.vni), wire, watches[1+2*i].cp, watches[2+2*i].cp)
	}
	byVNI := vxlanByVNI(wire.Stop(), marker)
	for vni, got := range byVNI {
		if vni == 100 && got != n {
			t.Errorf("%d copies of %d VNI 100 broadcasts on the wire, want exactly %d", got, n, n)
		}
		if vni != 100 {
			t.Errorf("%d broadcasts written to VNI 100's TAP left with VNI %d", got, vni)
		}
	}
	for _, w := range watches {
		got := countFrames(w.cp.Stop(), marker)
		switch {
		case w.want && got != n:
			t.Errorf("%s received %d of %d broadcasts of its VNI", w.name, got, n)
		case !w.want && got != 0:
			t.Errorf("%s received %d broadcasts of another VNI", w.name, got)
		}
	}

	checkDropsPerVNI(t, d, p, segs)
	// Prometheus agrees: the drops carry the device's labels, the shared
	// socket's counters its own.
	m := samples(t, scrapeIn(t, h, "http://"+metricsAddr+"/metrics"))
	for _, s := range segs {
		want := 0.0
		if s == segs[0] {
			want = 1
		}
		key := fmt.Sprintf(`vxland_rx_own_mac_total{dev=%q,vni="%d"}`, s.tap, s.vni)
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if got, ok := m[`vxland_rx_unknown_vni_total{local="0.0.0.0",port="4789"}`]; !ok || got < 1 {
		t.Errorf("the shared socket's rx_unknown_vni = %v (present %v), want at least 1", got, ok)
	}
	d.stop(t)
}

// perVNIDrops are the receive drops counted on the VNI of the datagram.
var perVNIDrops = []string{"rx_reserved_bits", "rx_own_mac", "rx_inner_short", "rx_learn_conflict",
	"rx_ecn_drop", "rx_invalid_source_mac"}

// checkDropsPerVNI sends, from the peer namespace p to the shared socket,
// datagrams of the first VNI that are dropped once their VNI is known (its
// TAP's own source MAC, a reserved bit), then a datagram of a VNI nobody
// serves as a barrier: the socket handles datagrams in order, so once
// rx_unknown_vni has counted it, the drops before it are counted too. They
// must show under the first VNI only, not under the others sharing the
// socket.
func checkDropsPerVNI(t *testing.T, d *daemon, p *testnet.NS, segs []*vniSeg) {
	t.Helper()
	first := segs[0]
	own, _ := net.ParseMAC(macOf(t, first.ns, first.tap))
	stranger, _ := net.ParseMAC("02:00:00:00:00:99")
	marker := []byte("per-vni-drop-marker")
	before := map[string]map[string]uint64{}
	for _, s := range segs {
		before[s.tap] = d.statsOf(t, s.tap)
	}
	sendDatagrams(t, p, "192.0.2.1", 0,
		append(vxlanHeader(0x08, first.vni, 0), innerUDP(t, own, own, 0, marker)...),      // own source MAC
		append(vxlanHeader(0x08, first.vni, 1), innerUDP(t, own, stranger, 0, marker)...), // reserved byte
		append(vxlanHeader(0x08, 999, 0), innerUDP(t, own, stranger, 0, marker)...),       // the barrier
	)
	testnet.Eventually(t, 3*time.Second, func() error {
		if got := d.statsOf(t, first.tap)["rx_unknown_vni"] - before[first.tap]["rx_unknown_vni"]; got != 1 {
			return errorf("rx_unknown_vni rose by %d, want 1 (the barrier datagram)", got)
		}
		return nil
	})
	for _, s := range segs {
		after := d.statsOf(t, s.tap)
		for _, k := range perVNIDrops {
			want := uint64(0)
			if s == first && (k == "rx_own_mac" || k == "rx_reserved_bits") {
				want = 1
			}
			if got := after[k] - before[s.tap][k]; got != want {
				t.Errorf("dev %s (VNI %d): %s rose by %d, want %d", s.tap, s.vni, k, got, want)
			}
		}
		// The socket's counters are the same whichever device shows them.
		if got, want := after["rx_unknown_vni"], d.statsOf(t, first.tap)["rx_unknown_vni"]; got != want {
			t.Errorf("dev %s shows rx_unknown_vni %d, dev %s %d: one socket, one counter", s.tap, got, first.tap, want)
		}
	}
}
