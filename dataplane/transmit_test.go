package dataplane

import (
	"bytes"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/vxland/vxland/encap"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/offload"
)

// TestSegmentsShareSockets runs two segments' transmit paths at once on
// one endpoint, as two VNIs of one process do, and checks that every
// datagram that arrives carries the VNI of the frame inside it: send
// batches must not be shared between the loops (run with -race).
func TestSegmentsShareSockets(t *testing.T) {
	ep, _ := benchEndpoint(t, false, nil, nil)
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	sink.SetReadBuffer(4 << 20)
	port := uint16(sink.LocalAddr().(*net.UDPAddr).Port)

	const perSeg = 2000
	var segs []*Segment
	for _, vni := range []uint32{100, 200} {
		table := fdb.New(fdb.Options{})
		table.Append(fdb.Zero, fdb.Dest{IP: benchLocal, Port: port, VNI: vni}, fdb.Permanent)
		segs = append(segs, addSegment(t, ep, vni, table))
	}
	got := map[uint32]int{}
	bad := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		sink.SetReadDeadline(time.Now().Add(5 * time.Second))
		for got[100]+got[200]+bad < 2*perSeg {
			n, err := sink.Read(buf)
			if err != nil {
				return
			}
			vni := uint32(buf[4])<<16 | uint32(buf[5])<<8 | uint32(buf[6])
			if n < encap.HeaderLen+encap.EthHeaderLen+4 || binary.BigEndian.Uint32(buf[encap.HeaderLen+encap.EthHeaderLen:]) != vni {
				bad++
				continue
			}
			got[vni]++
		}
	}()
	var wg sync.WaitGroup
	for _, s := range segs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := txFor(s)
			for i := 0; i < perSeg; i++ {
				f := make([]byte, 100)
				copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5})
				binary.BigEndian.PutUint32(f[encap.EthHeaderLen:], s.cfg.VNI) // the frame names its VNI
				st.bufs[i%len(st.bufs)] = f
				s.forward(st, s.tune.Load(), f)
				if i%len(st.bufs) == len(st.bufs)-1 {
					s.flush(st)
				}
			}
			s.flush(st)
		}()
	}
	wg.Wait()
	<-done
	if bad != 0 {
		t.Errorf("%d datagrams carried another VNI's frame", bad)
	}
	// Loopback may drop under load; what arrived must be right, and most must arrive.
	if got[100] < perSeg/2 || got[200] < perSeg/2 {
		t.Errorf("received %v of %d per VNI", got, perSeg)
	}
	for _, s := range segs {
		if e := s.c.txErrors.Load(); e != 0 {
			t.Errorf("vni %d: %d send errors", s.cfg.VNI, e)
		}
	}
}

// TestForwardGSOOversizedSegment offers super-frames whose segments would
// not fit a UDP datagram once encapsulated: they are counted under tx_bad_gso
// and nothing is sent, never a panic. The largest segment that does fit goes
// out as one datagram.
func TestForwardGSOOversizedSegment(t *testing.T) {
	for _, tc := range []struct {
		name              string
		payload, gsoSize  int
		wantSent, wantBad uint64
	}{
		// 54 bytes of headers + 65460 = a 65514-byte segment, 65522 with the
		// VXLAN header: more than maxGSOPayload.
		{"one segment too large", 65460, 65460, 0, 1},
		// Two segments, the first 54 + 65420 bytes: still too large.
		{"first of two too large", 65460, 65420, 0, 1},
		// 54 + 65400 + 8 = 65462 bytes of UDP payload: fits.
		{"largest that fits", 65400, 65420, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table := fdb.New(fdb.Options{})
			table.Append(fdb.Zero, sinkDest(t), fdb.Permanent)
			_, s := benchEndpoint(t, true, table, nil)
			frame := tcp4Frame(benchPeerMAC, benchOurMAC, tc.payload, 1, true)
			h := offload.VirtioNetHdr{Flags: offload.FlagNeedsCsum, GSOType: offload.GSOTCPv4,
				GSOSize: uint16(tc.gsoSize), CsumStart: 34, CsumOffset: 16}
			st := txFor(s)
			s.forwardGSO(st, s.tune.Load(), h, frame)
			s.flush(st)
			if got := s.c.txBadGSO.Load(); got != tc.wantBad {
				t.Errorf("tx_bad_gso %d, want %d", got, tc.wantBad)
			}
			if got := s.c.txMessages.Load(); got != tc.wantSent {
				t.Errorf("tx_messages %d, want %d", got, tc.wantSent)
			}
			if e, nd := s.c.txErrors.Load(), s.c.txNoDest.Load(); e != 0 || nd != 0 {
				t.Errorf("tx_send_errors %d, tx_no_destination %d, want 0", e, nd)
			}
			if !bytes.Equal(frame[:6], benchPeerMAC[:]) {
				t.Error("the input frame was modified")
			}
		})
	}
}

// TestLowerGSOLimit checks that a refused train size only ever lowers the
// limit.
func TestLowerGSOLimit(t *testing.T) {
	ep := &Endpoint{cfg: Config{Logf: t.Logf}}
	ep.gsoLimit.Store(maxGSOPayload)
	ep.lowerGSOLimit(9000)
	ep.lowerGSOLimit(20000)
	if got := ep.gsoLimit.Load(); got != 8999 {
		t.Errorf("limit %d, want 8999", got)
	}
}

// TestSourcePortsSpread sends one frame of each of 1000 TCP flows, then
// each again, through the real transmit sockets, and reads the outer
// source ports on a socket: the flows spread over DefaultTxSockets
// distinct ports (the kernel spreads them over its whole range; fabrics
// hash on this port), and every flow keeps its port.
func TestSourcePortsSpread(t *testing.T) {
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	sink.SetReadBuffer(8 << 20)
	table := fdb.New(fdb.Options{})
	table.Add(benchDstMAC, fdb.Dest{IP: benchLocal, Port: uint16(sink.LocalAddr().(*net.UDPAddr).Port), VNI: benchVNI}, fdb.Static)
	_, s := benchEndpoint(t, false, table, nil)
	st := txFor(s)
	const flows = 1000
	for round := 0; round < 2; round++ {
		for i := 0; i < flows; i++ {
			f := tcp4Frame(benchDstMAC, benchPeerMAC, 10, 1, false)
			binary.BigEndian.PutUint16(f[34:36], uint16(10000+i)) // the flow's TCP source port
			s.forward(st, s.tune.Load(), f)
			if st.full() || i%32 == 31 {
				s.flush(st)
			}
		}
		s.flush(st)
	}
	portOf := map[uint16]int{} // flow -> outer source port
	ports := map[int]bool{}
	buf := make([]byte, 2048)
	sink.SetReadDeadline(time.Now().Add(5 * time.Second))
	for n := 0; n < 2*flows; n++ {
		size, from, err := sink.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", n, err)
		}
		if size < encap.HeaderLen+36 {
			t.Fatalf("datagram of %d bytes", size)
		}
		flow := binary.BigEndian.Uint16(buf[encap.HeaderLen+34:])
		if p, ok := portOf[flow]; ok && p != from.Port {
			t.Fatalf("flow %d left from ports %d and %d", flow, p, from.Port)
		}
		portOf[flow] = from.Port
		ports[from.Port] = true
	}
	if len(ports) != DefaultTxSockets {
		t.Errorf("%d flows used %d distinct source ports, want %d", flows, len(ports), DefaultTxSockets)
	}
}

// TestForwardGSOBatchAllocs queues a whole batch of super-frames before
// one flush, as a busy transmit worker does: the header slots run out
// mid-batch and the worker flushes and carries on, without allocating.
func TestForwardGSOBatchAllocs(t *testing.T) {
	table := fdb.New(fdb.Options{})
	if err := table.Add(benchDstMAC, sinkDest(t), fdb.Static); err != nil {
		t.Fatal(err)
	}
	_, s := benchEndpoint(t, true, table, nil)
	st := txFor(s)
	frame := tcp4Frame(benchDstMAC, benchPeerMAC, benchGSOSegments*benchMSS, 1, true)
	h := offload.VirtioNetHdr{Flags: offload.FlagNeedsCsum, GSOType: offload.GSOTCPv4,
		HdrLen: 54, GSOSize: benchMSS, CsumStart: 34, CsumOffset: 16}
	tn := s.tune.Load()
	batch := func() {
		for range defaultBatch {
			s.forwardGSO(st, tn, h, frame)
		}
		s.flush(st)
	}
	batch()
	if a := testing.AllocsPerRun(5, batch); a != 0 {
		t.Errorf("%v allocations per batch of %d super-frames", a, defaultBatch)
	}
	if bad := s.c.txBadGSO.Load(); bad != 0 {
		t.Errorf("tx_bad_gso %d", bad)
	}
	// Seven batches: the first, AllocsPerRun's warm-up and its five runs.
	if got, want := s.c.txFrames.Load(), uint64(7*defaultBatch*benchGSOSegments); got != want {
		t.Errorf("tx_frames %d, want %d", got, want)
	}
}
