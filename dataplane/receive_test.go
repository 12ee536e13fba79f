package dataplane

import (
	"bytes"
	"github.com/vxland/vxland/netio/memio"
	"maps"
	"net/netip"
	"testing"

	"github.com/vxland/vxland/encap"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/stats"
)

// values returns a snapshot as a map by name.
func values(vs []stats.Value) map[string]uint64 {
	m := make(map[string]uint64, len(vs))
	for _, v := range vs {
		m[v.Name] = v.Value
	}
	return m
}

// delta returns the counters of after that differ from before, with the
// difference.
func delta(before, after map[string]uint64) map[string]uint64 {
	d := map[string]uint64{}
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

// TestDropCounterScopes checks that every receive drop reason has exactly
// one counter, on the socket or on each segment, and that no segment
// counter has the name of a socket counter: vxlanctl stats shows the two
// lists together.
func TestDropCounterScopes(t *testing.T) {
	ep, s := benchEndpoint(t, false, nil, nil)
	sock, seg := values(ep.Counters()), values(s.Counters())
	for r := encap.ReasonOK + 1; r < encap.NumReasons; r++ {
		_, onSock := sock[r.String()]
		_, onSeg := seg[r.String()]
		if onSock == onSeg {
			t.Errorf("%v: counted on the socket %v, on the segment %v; want exactly one", r, onSock, onSeg)
		}
		if onSeg != perVNI(r) {
			t.Errorf("%v: on the segment %v, but perVNI says %v", r, onSeg, perVNI(r))
		}
	}
	for name := range seg {
		if _, dup := sock[name]; dup {
			t.Errorf("counter %s is both the socket's and the segment's", name)
		}
	}
	if got, want := len(s.Stats()), len(sock)+len(seg); got != want {
		t.Errorf("Stats has %d counters, want %d (segment and socket)", got, want)
	}
	if _, ok := seg["rx_frames"]; !ok {
		t.Error("segment has no rx_frames counter")
	}
	if _, ok := sock["rx_datagrams"]; !ok {
		t.Error("socket has no rx_datagrams counter")
	}
}

// TestReceiveDropsPerVNI offers datagrams that are dropped to an endpoint
// serving two VNIs on one socket. A drop decided once the VNI is known is
// counted on that VNI's segment and nowhere else; the other segment sees
// nothing; the socket counts the datagram, and itself counts the drops
// decided before the VNI is known.
func TestReceiveDropsPerVNI(t *testing.T) {
	const vniA, vniB = 100, 200
	ep, _ := benchEndpoint(t, false, nil, nil)
	tables := map[uint32]*fdb.Table{}
	segs := map[uint32]*Segment{}
	for _, vni := range []uint32{vniA, vniB} {
		tables[vni] = fdb.New(fdb.Options{})
		segs[vni] = addSegment(t, ep, vni, tables[vni])
	}
	w := rxFor(ep)

	from := benchRemote
	other := netip.MustParseAddr("192.0.2.3")
	pinned := [6]byte{0x02, 0, 0x5e, 0, 0, 0x77}
	if err := tables[vniA].Add(pinned, fdb.Dest{IP: other, Port: DefaultPort, VNI: vniA}, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	frame := func(src [6]byte) []byte { return tcp4Frame(benchDstMAC, src, 100, 1, false) }
	dgram := func(flags byte, vni uint32, last byte, inner []byte) []byte {
		d := make([]byte, encap.HeaderLen, encap.HeaderLen+len(inner))
		encap.PutHeader(d, vni)
		d[0], d[7] = flags, last
		return append(d, inner...)
	}
	good := frame(benchPeerMAC)
	truncated := append([]byte(nil), good[:encap.EthHeaderLen+10]...) // IPv4, header cut short

	type want struct {
		sock, seg map[string]uint64 // changes on the socket and on the VNI's segment
	}
	for _, tc := range []struct {
		name  string
		d     []byte
		tos   uint8
		vni   uint32 // the segment expected to count it (0: none)
		want  want
		setup func()
	}{
		{name: "short datagram", d: []byte{0x08, 0, 0},
			want: want{sock: map[string]uint64{"rx_datagrams": 1, "rx_short": 1}}},
		{name: "I flag clear", d: dgram(0x00, vniA, 0, good),
			want: want{sock: map[string]uint64{"rx_datagrams": 1, "rx_no_i_flag": 1}}},
		{name: "unknown VNI", d: dgram(0x08, 300, 0, good),
			want: want{sock: map[string]uint64{"rx_datagrams": 1, "rx_unknown_vni": 1}}},
		{name: "reserved bits, unknown VNI", d: dgram(0x0c, 300, 0, good),
			want: want{sock: map[string]uint64{"rx_datagrams": 1, "rx_unknown_vni": 1}}},
		{name: "reserved flag bit", d: dgram(0x0c, vniA, 0, good), vni: vniA,
			want: want{sock: map[string]uint64{"rx_datagrams": 1}, seg: map[string]uint64{"rx_reserved_bits": 1}}},
		{name: "reserved last byte", d: dgram(0x08, vniB, 1, good), vni: vniB,
			want: want{sock: map[string]uint64{"rx_datagrams": 1}, seg: map[string]uint64{"rx_reserved_bits": 1}}},
		{name: "own source MAC", d: dgram(0x08, vniA, 0, frame(benchOurMAC)), vni: vniA,
			want: want{sock: map[string]uint64{"rx_datagrams": 1}, seg: map[string]uint64{"rx_own_mac": 1}}},
		{name: "inner IPv4 header truncated", d: dgram(0x08, vniB, 0, truncated), vni: vniB,
			want: want{sock: map[string]uint64{"rx_datagrams": 1}, seg: map[string]uint64{"rx_inner_short": 1}}},
		{name: "source pinned to another remote", d: dgram(0x08, vniA, 0, frame(pinned)), vni: vniA,
			want: want{sock: map[string]uint64{"rx_datagrams": 1}, seg: map[string]uint64{"rx_learn_conflict": 1}}},
		{name: "group source MAC", d: dgram(0x08, vniA, 0, frame([6]byte{0x01, 0, 0x5e, 0, 0, 1})), vni: vniA,
			want: want{sock: map[string]uint64{"rx_datagrams": 1}, seg: map[string]uint64{"rx_invalid_source_mac": 1}}},
		// Learning comes before the ECN check, as in the kernel.
		{name: "outer CE on Not-ECT", d: dgram(0x08, vniB, 0, frame(benchPeerMAC)), tos: 0x03, vni: vniB,
			want: want{sock: map[string]uint64{"rx_datagrams": 1}, seg: map[string]uint64{"rx_ecn_drop": 1, "fdb_learned": 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sockBefore := values(ep.Counters())
			segBefore := map[uint32]map[string]uint64{}
			for vni, s := range segs {
				segBefore[vni] = values(s.Counters())
			}
			orig := bytes.Clone(tc.d)
			w.receive(tc.d, from, tc.tos)
			w.finish()
			if got := delta(sockBefore, values(ep.Counters())); !maps.Equal(got, tc.want.sock) {
				t.Errorf("socket counters changed by %v, want %v", got, tc.want.sock)
			}
			for vni, s := range segs {
				want := map[string]uint64{}
				if vni == tc.vni {
					want = tc.want.seg
				}
				if got := delta(segBefore[vni], values(s.Counters())); !maps.Equal(got, want) {
					t.Errorf("VNI %d counters changed by %v, want %v", vni, got, want)
				}
			}
			if tc.tos == 0 && !bytes.Equal(tc.d, orig) {
				t.Error("a dropped datagram was modified")
			}
		})
	}
}

// TestAllowRemote offers batches, as recv fills them, from sources inside
// and outside the allowlist. Those from outside are counted (each datagram
// of a GRO train, a truncated one too) and dropped before anything reads
// them: nothing learned, nothing delivered, no other drop counted. Those
// from inside go on (here to drops that prove they were read). An empty
// list allows every source again.
func TestAllowRemote(t *testing.T) {
	table := fdb.New(fdb.Options{})
	ep, s := benchEndpoint(t, false, table, nil)
	dev := s.devs[0].(*memio.Device)
	ep.SetAllowRemote([]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("203.0.113.7/32")})
	inside, outside := netip.MustParseAddr("192.0.2.5"), netip.MustParseAddr("198.51.100.7")

	good := vxlanDatagram(tcp4Frame(benchDstMAC, benchPeerMAC, 100, 1, false))
	reserved := bytes.Clone(good)
	reserved[7] = 1
	w := rxFor(ep)
	type dgram struct {
		b    []byte
		from netip.Addr
		size int // -1: truncated by the socket; 0: len(b)
		gso  int
	}
	batch := func(ds ...dgram) {
		t.Helper()
		for i, d := range ds {
			m := &w.msgs[i]
			n := copy(m.Buf, d.b)
			m.N, m.Addr, m.TOS, m.GSOSize = n, netip.AddrPortFrom(d.from, 4789), 0, d.gso
			if d.size < 0 {
				m.N = -1
			}
		}
		w.receiveBatch(len(ds))
		if len(dev.Written()) != 0 {
			t.Fatalf("a frame was delivered: %x", <-dev.Written())
		}
	}
	check := func(what string, sockWant, segWant map[string]uint64, do func()) {
		t.Helper()
		sock, seg := values(ep.Counters()), values(s.Counters())
		do()
		if got := delta(sock, values(ep.Counters())); !maps.Equal(got, sockWant) {
			t.Errorf("%s: socket counters changed by %v, want %v", what, got, sockWant)
		}
		if got := delta(seg, values(s.Counters())); !maps.Equal(got, segWant) {
			t.Errorf("%s: segment counters changed by %v, want %v", what, got, segWant)
		}
	}

	train := bytes.Repeat(good, 3) // a UDP GRO train of three datagrams
	check("outside", map[string]uint64{"rx_datagrams": 5, "rx_not_allowed": 5}, map[string]uint64{}, func() {
		batch(dgram{b: good, from: outside}, dgram{b: train, from: outside, gso: len(good)},
			dgram{b: good, from: outside, size: -1})
	})
	if e := table.Lookup(benchPeerMAC); e != nil {
		t.Errorf("the source of a dropped datagram was learned: %v", e)
	}
	check("inside", map[string]uint64{"rx_datagrams": 2, "rx_short": 1}, map[string]uint64{"rx_reserved_bits": 1}, func() {
		batch(dgram{b: reserved, from: inside}, dgram{b: good, from: inside, size: -1})
	})
	check("a /32", map[string]uint64{"rx_datagrams": 1}, map[string]uint64{"rx_reserved_bits": 1}, func() {
		batch(dgram{b: reserved, from: netip.MustParseAddr("203.0.113.7")})
	})
	check("next to a /32", map[string]uint64{"rx_datagrams": 1, "rx_not_allowed": 1}, map[string]uint64{}, func() {
		batch(dgram{b: reserved, from: netip.MustParseAddr("203.0.113.8")})
	})
	if a := testing.AllocsPerRun(100, func() { batch(dgram{b: good, from: outside}, dgram{b: reserved, from: inside}) }); a != 0 {
		t.Errorf("receiveBatch allocates %.1f times per batch", a)
	}
	ep.SetAllowRemote(nil)
	check("no list", map[string]uint64{"rx_datagrams": 1}, map[string]uint64{"rx_reserved_bits": 1}, func() {
		batch(dgram{b: reserved, from: outside})
	})
}
