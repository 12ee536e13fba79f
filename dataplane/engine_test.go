package dataplane

// Tests of the whole engine (New, Run, its workers) on in-memory devices
// and an in-memory underlay (package memio): no privilege, no kernel, and
// every frame and datagram the engine produces is seen exactly.

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vxland/vxland/checksum"
	"github.com/vxland/vxland/encap"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/inner"
	"github.com/vxland/vxland/netio"
	"github.com/vxland/vxland/netio/memio"
	"github.com/vxland/vxland/offload"
)

var (
	memRemote  = netip.MustParseAddr("192.0.2.2")
	memRemote2 = netip.MustParseAddr("192.0.2.3")
)

// memEngine is a running endpoint over memio.
type memEngine struct {
	ep    *Endpoint
	ul    *memio.Underlay
	devs  []*memio.Device
	table *fdb.Table
}

// startMem runs an endpoint serving one VNI (benchVNI) over an in-memory
// underlay with the given capabilities and queues, and a device with the
// given capabilities and queues. It stops when the test ends.
func startMem(t *testing.T, ulCaps netio.UnderlayCaps, devCaps netio.FrameCaps, queues int, tune func(*SegmentConfig)) *memEngine {
	t.Helper()
	m := &memEngine{ul: memio.NewUnderlay(ulCaps, DefaultPort, queues), table: fdb.New(fdb.Options{})}
	var devs []netio.FrameDevice
	for range queues {
		d := memio.NewDevice("mem0", devCaps)
		m.devs = append(m.devs, d)
		devs = append(devs, d)
	}
	sc := SegmentConfig{VNI: benchVNI, MAC: benchOurMAC, Table: m.table, Learning: true, Offload: devCaps.VnetHdr,
		MTU: 1450, Devices: devs}
	if tune != nil {
		tune(&sc)
	}
	ep, err := New(Config{Underlay: m.ul, Queues: queues, Offload: ulCaps.GSO, Logf: t.Logf, Segments: []SegmentConfig{sc}})
	if err != nil {
		t.Fatal(err)
	}
	m.ep = ep
	done := make(chan error, 1)
	go func() { done <- ep.Run() }()
	t.Cleanup(func() {
		ep.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return m
}

// sent waits for the next datagram the engine sends.
func (m *memEngine) sent(t *testing.T) memio.Sent {
	t.Helper()
	select {
	case d := <-m.ul.Sent():
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no datagram sent")
	}
	return memio.Sent{}
}

// written waits for the next frame the engine writes to device queue q.
func (m *memEngine) written(t *testing.T, q int) []byte {
	t.Helper()
	select {
	case f := <-m.devs[q].Written():
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no frame written")
	}
	return nil
}

// counter reads one of the segment's or the socket's counters.
func (m *memEngine) counter(name string) uint64 {
	for _, v := range m.ep.Segments()[0].Stats() {
		if v.Name == name {
			return v.Value
		}
	}
	return 0
}

// datagram is benchVNI's VXLAN payload carrying frame.
func datagram(frame []byte) []byte { return vxlanDatagram(frame) }

// TestEngineTransmit: a frame read from the device leaves as one datagram
// per destination (a unicast entry; the three flood destinations of the
// all-zeros entry for a broadcast), each the VXLAN header with the
// segment's VNI followed by the frame unchanged, to port 4789, TTL 64, one
// flow hash per flow. A unicast frame without an entry is counted, not sent.
func TestEngineTransmit(t *testing.T) {
	m := startMem(t, netio.UnderlayCaps{}, netio.FrameCaps{}, 1, nil)
	m.table.Add(benchDstMAC, fdb.Dest{IP: memRemote, VNI: benchVNI}, fdb.Static)
	flood := []netip.Addr{memRemote, memRemote2, netip.MustParseAddr("192.0.2.4")}
	for _, a := range flood {
		m.table.Append(fdb.Zero, fdb.Dest{IP: a, VNI: benchVNI}, fdb.Permanent)
	}
	frame := tcp4Frame(benchDstMAC, benchPeerMAC, 100, 1, false)
	m.devs[0].Inject(frame)
	d := m.sent(t)
	want := datagram(frame)
	if !bytes.Equal(d.Payload, want) {
		t.Fatalf("payload %x, want %x", d.Payload, want)
	}
	if d.To != netip.AddrPortFrom(memRemote, DefaultPort) || d.TTL != 64 || d.TOS != 0 || d.GSOSize != 0 {
		t.Errorf("to %v ttl %d tos %d gso %d", d.To, d.TTL, d.TOS, d.GSOSize)
	}
	var l inner.Layout
	l.Decode(frame)
	if want := encap.FlowHash(frame, &l); d.Flow != want {
		t.Errorf("flow %#x, want the frame's flow hash %#x", d.Flow, want)
	}

	bcast := tcp4Frame(benchBcast, benchPeerMAC, 50, 1, false)
	m.devs[0].Inject(bcast)
	for _, a := range flood {
		d := m.sent(t)
		if d.To.Addr() != a || !bytes.Equal(d.Payload, datagram(bcast)) {
			t.Errorf("flood copy to %v (want %v): %x", d.To, a, d.Payload)
		}
	}

	unknown := tcp4Frame([6]byte{0x02, 0, 0, 0, 0, 0x99}, benchPeerMAC, 50, 1, false)
	if err := m.table.Del(fdb.Zero, nil); err != nil { // no flooding: unknown unicast goes nowhere
		t.Fatal(err)
	}
	m.devs[0].Inject(unknown)
	m.devs[0].Inject(frame) // sentinel: sent once the unknown one was handled
	if d := m.sent(t); !bytes.Equal(d.Payload, want) {
		t.Fatalf("after the unknown frame, sent %x", d.Payload)
	}
	if got := m.counter("tx_no_destination"); got != 1 {
		t.Errorf("tx_no_destination %d, want 1", got)
	}
	if got := m.counter("tx_frames"); got != 3 {
		t.Errorf("tx_frames %d, want 3", got)
	}
}

// TestEngineTOSInherit: with tos inherit the outer TOS carries the inner
// DS field, ECN as RFC 6040 says (CE leaves as ECT(0)), and ttl inherit
// copies the inner TTL.
func TestEngineTOSInherit(t *testing.T) {
	m := startMem(t, netio.UnderlayCaps{}, netio.FrameCaps{}, 1, func(sc *SegmentConfig) {
		sc.TOSInherit, sc.TTLInherit = true, true
	})
	m.table.Add(benchDstMAC, fdb.Dest{IP: memRemote, VNI: benchVNI}, fdb.Static)
	frame := tcp4Frame(benchDstMAC, benchPeerMAC, 100, 1, false)
	frame[15] = 0xb8 | 0x03 // EF, CE
	frame[22] = 17          // TTL
	m.devs[0].Inject(frame)
	d := m.sent(t)
	if d.TOS != 0xb8|0x02 || d.TTL != 17 {
		t.Errorf("outer tos %#x ttl %d, want %#x 17", d.TOS, d.TTL, 0xb8|0x02)
	}
}

// TestEngineReceive: a datagram from a remote is decapsulated to the
// device, byte for byte, and its source MAC learned towards the sender;
// datagrams to drop (own source MAC, outer CE on a Not-ECT packet, an
// unknown VNI, a truncated one) are counted and never written, which a
// good datagram sent behind them proves.
func TestEngineReceive(t *testing.T) {
	m := startMem(t, netio.UnderlayCaps{}, netio.FrameCaps{}, 1, nil)
	from := netip.AddrPortFrom(memRemote, 40000)
	frame := tcp4Frame(benchDstMAC, benchPeerMAC, 100, 1, false)
	m.ul.Inject(0, datagram(frame), from, 0, 0)
	if got := m.written(t, 0); !bytes.Equal(got, frame) {
		t.Fatalf("wrote %x, want %x", got, frame)
	}
	dests := m.table.Lookup(benchPeerMAC)
	if len(dests) != 1 || dests[0].IP != memRemote || dests[0].VNI != benchVNI {
		t.Fatalf("learned %v, want %v on VNI %d", dests, memRemote, benchVNI)
	}

	own := tcp4Frame(benchDstMAC, benchOurMAC, 100, 1, false)
	other := datagram(frame)
	binary.BigEndian.PutUint32(other[4:], 4242<<8)
	m.ul.Inject(0, datagram(own), from, 0, 0)
	m.ul.Inject(0, datagram(frame), from, 0x03, 0) // CE on Not-ECT
	m.ul.Inject(0, other, from, 0, 0)
	m.ul.InjectTruncated(0, from)
	sentinel := tcp4Frame(benchDstMAC, benchPeerMAC, 100, 2, false)
	m.ul.Inject(0, datagram(sentinel), from, 0, 0)
	if got := m.written(t, 0); !bytes.Equal(got, sentinel) {
		t.Fatalf("wrote %x, want the sentinel", got)
	}
	for name, want := range map[string]uint64{"rx_own_mac": 1, "rx_ecn_drop": 1, "rx_unknown_vni": 1, "rx_short": 1,
		"rx_datagrams": 6, "rx_frames": 2, "rx_tap_writes": 2, "fdb_learned": 1} {
		if got := m.counter(name); got != want {
			t.Errorf("%s %d, want %d", name, got, want)
		}
	}
}

// TestEngineReceiveCoalesces: consecutive TCP segments of one flow that
// arrive in one batch (here a UDP GRO train) leave as one GSO frame with a
// virtio-net header, its payload the segments' in order.
func TestEngineReceiveCoalesces(t *testing.T) {
	m := startMem(t, netio.UnderlayCaps{GRO: true}, netio.FrameCaps{VnetHdr: true, TSO: true}, 1, nil)
	const mss = 1000
	var train []byte
	var payload []byte
	for i := range 3 {
		f := tcp4Frame(benchDstMAC, benchPeerMAC, mss, 1+uint32(i*mss), false)
		payload = append(payload, f[54:]...)
		train = append(train, datagram(f)...)
	}
	m.ul.Inject(0, train, netip.AddrPortFrom(memRemote, 40000), 0, encap.HeaderLen+54+mss)
	got := m.written(t, 0)
	var h offload.VirtioNetHdr
	if err := h.Decode(got); err != nil {
		t.Fatal(err)
	}
	if h.GSOType != offload.GSOTCPv4 || h.GSOSize != mss {
		t.Errorf("virtio-net header %v, want TCPv4 GSO of %d", h, mss)
	}
	f := got[offload.VirtioNetHdrLen:]
	if len(f) != 54+3*mss || !bytes.Equal(f[54:], payload) {
		t.Errorf("merged frame of %d bytes, want %d with the three payloads", len(f), 54+3*mss)
	}
	if m.counter("rx_frames") != 3 || m.counter("rx_tap_writes") != 1 {
		t.Errorf("rx_frames %d rx_tap_writes %d, want 3 1", m.counter("rx_frames"), m.counter("rx_tap_writes"))
	}
}

// superFrame is a TSO super-frame as a TAP with offloads hands it over:
// its virtio-net header (GSO TCPv4, NEEDS_CSUM) and segs*mss bytes of
// payload with the checksum field holding the pseudo-header seed.
func superFrame(segs, mss int) []byte {
	f := tcp4Frame(benchDstMAC, benchPeerMAC, segs*mss, 1, true)
	h := offload.VirtioNetHdr{Flags: offload.FlagNeedsCsum, GSOType: offload.GSOTCPv4, HdrLen: 54,
		GSOSize: uint16(mss), CsumStart: 34, CsumOffset: 16}
	b := make([]byte, offload.VirtioNetHdrLen, offload.VirtioNetHdrLen+len(f))
	h.Encode(b)
	return append(b, f...)
}

// TestEngineTransmitGSO: a super-frame leaves as one UDP_SEGMENT train
// (GSOSize = VXLAN header + one segment) when the underlay takes them, as
// single datagrams otherwise; and when the underlay refuses a train as too
// large (EMSGSIZE), that size goes one datagram at a time from then on.
func TestEngineTransmitGSO(t *testing.T) {
	const segs, mss = 10, 1000
	stride := encap.HeaderLen + 54 + mss
	for _, gso := range []bool{true, false} {
		m := startMem(t, netio.UnderlayCaps{GSO: gso}, netio.FrameCaps{VnetHdr: true, TSO: true}, 1, nil)
		m.table.Add(benchDstMAC, fdb.Dest{IP: memRemote, VNI: benchVNI}, fdb.Static)
		m.devs[0].Inject(superFrame(segs, mss))
		if gso {
			d := m.sent(t)
			if d.GSOSize != stride || len(d.Payload) != segs*stride {
				t.Fatalf("train: gso %d, %d bytes; want %d, %d", d.GSOSize, len(d.Payload), stride, segs*stride)
			}
			checkSegments(t, d.Payload, stride, mss)
		} else {
			for i := range segs {
				d := m.sent(t)
				if d.GSOSize != 0 || len(d.Payload) != stride {
					t.Fatalf("datagram %d: gso %d, %d bytes", i, d.GSOSize, len(d.Payload))
				}
				checkSegments(t, d.Payload, stride, mss)
			}
		}
	}

	m := startMem(t, netio.UnderlayCaps{GSO: true}, netio.FrameCaps{VnetHdr: true, TSO: true}, 1, nil)
	m.table.Add(benchDstMAC, fdb.Dest{IP: memRemote, VNI: benchVNI}, fdb.Static)
	m.ul.Refuse(func(d netio.Datagram) error {
		if d.GSOSize > 0 {
			return unix.EMSGSIZE
		}
		return nil
	})
	m.devs[0].Inject(superFrame(segs, mss)) // refused: counted
	deadline := time.Now().Add(5 * time.Second)
	for m.counter("tx_send_errors") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("tx_send_errors %d, want 1", m.counter("tx_send_errors"))
		}
		time.Sleep(time.Millisecond) // polling a counter, not waiting for an event
	}
	m.devs[0].Inject(superFrame(segs, mss)) // goes as single datagrams
	for range segs {
		if d := m.sent(t); d.GSOSize != 0 {
			t.Fatalf("a train of %d after the refusal", d.GSOSize)
		}
	}
}

// checkSegments checks each datagram of a train: a VXLAN header for
// benchVNI and an inner TCP segment of mss bytes with a valid checksum.
func checkSegments(t *testing.T, train []byte, stride, mss int) {
	t.Helper()
	for off := 0; off < len(train); off += stride {
		d := train[off:min(off+stride, len(train))]
		vni, frame, r := encap.Parse(d)
		if r != encap.ReasonOK || vni != benchVNI || len(frame) != 54+mss {
			t.Fatalf("datagram at %d: vni %d reason %v, %d bytes", off, vni, r, len(frame))
		}
		if !validTCP4(frame) {
			t.Fatalf("datagram at %d: bad TCP checksum", off)
		}
	}
}

// TestEngineQueues: with two queues, what arrives on underlay queue i is
// written to device queue i, and frames read from either device queue are
// sent.
func TestEngineQueues(t *testing.T) {
	m := startMem(t, netio.UnderlayCaps{}, netio.FrameCaps{}, 2, nil)
	m.table.Add(benchDstMAC, fdb.Dest{IP: memRemote, VNI: benchVNI}, fdb.Static)
	from := netip.AddrPortFrom(memRemote, 40000)
	for q := range 2 {
		frame := tcp4Frame(benchDstMAC, benchPeerMAC, 100, uint32(q), false)
		m.ul.Inject(q, datagram(frame), from, 0, 0)
		if got := m.written(t, q); !bytes.Equal(got, frame) {
			t.Errorf("queue %d wrote %x", q, got)
		}
		m.devs[q].Inject(frame)
		if d := m.sent(t); !bytes.Equal(d.Payload, datagram(frame)) {
			t.Errorf("queue %d sent %x", q, d.Payload)
		}
	}
}

// TestEngineAddRemoveSegment: a VNI added while running is served at once;
// once removed its datagrams are unknown and its devices closed.
func TestEngineAddRemoveSegment(t *testing.T) {
	m := startMem(t, netio.UnderlayCaps{}, netio.FrameCaps{}, 1, nil)
	dev := memio.NewDevice("mem1", netio.FrameCaps{})
	s, err := m.ep.AddSegment(SegmentConfig{VNI: 7, MAC: benchOurMAC, Table: fdb.New(fdb.Options{}), Devices: []netio.FrameDevice{dev}})
	if err != nil {
		t.Fatal(err)
	}
	frame := tcp4Frame(benchDstMAC, benchPeerMAC, 100, 1, false)
	d := make([]byte, encap.HeaderLen, encap.HeaderLen+len(frame))
	encap.PutHeader(d, 7)
	d = append(d, frame...)
	from := netip.AddrPortFrom(memRemote, 40000)
	m.ul.Inject(0, d, from, 0, 0)
	select {
	case got := <-dev.Written():
		if !bytes.Equal(got, frame) {
			t.Fatalf("wrote %x", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("VNI 7 not served")
	}
	if n, err := m.ep.RemoveSegment(s); n != 1 || err != nil {
		t.Fatalf("RemoveSegment: %d %v", n, err)
	}
	m.ul.Inject(0, d, from, 0, 0)
	m.ul.Inject(0, datagram(frame), from, 0, 0) // sentinel on the remaining VNI
	m.written(t, 0)
	if got := m.counter("rx_unknown_vni"); got != 1 {
		t.Errorf("rx_unknown_vni %d, want 1", got)
	}
}

// validTCP4 reports whether an untagged IPv4/TCP frame (20-byte IP
// header) has a correct TCP checksum.
func validTCP4(frame []byte) bool {
	ip, tcp := frame[14:34], frame[34:]
	return checksum.Fold(checksum.Sum(tcp, checksum.PseudoV4(ip[12:16], ip[16:20], 6, len(tcp)))) == 0xffff
}
