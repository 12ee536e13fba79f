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
	ep := benchEndpoint(t, false)
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
		s := benchSegment(ep, table, nil, false)
		s.cfg.VNI = vni
		segs = append(segs, s)
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
			st := newTxState()
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
			ep := benchEndpoint(t, true)
			table := fdb.New(fdb.Options{})
			table.Append(fdb.Zero, sinkDest(t), fdb.Permanent)
			s := benchSegment(ep, table, nil, true)
			frame := tcp4Frame(benchPeerMAC, benchOurMAC, tc.payload, 1, true)
			h := offload.VirtioNetHdr{Flags: offload.FlagNeedsCsum, GSOType: offload.GSOTCPv4,
				GSOSize: uint16(tc.gsoSize), CsumStart: 34, CsumOffset: 16}
			st := newTxState()
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
