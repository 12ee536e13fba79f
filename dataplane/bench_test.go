package dataplane

// Benchmarks of the per-packet paths, run with -benchmem (make bench-go).
// Every one of them must report 0 allocs/op: the transmit and receive loops
// allocate their buffers once and nothing per frame or per batch.
//
// The transmit benchmarks send real datagrams through real UDP sockets bound
// to 127.0.0.1, to sink sockets that are never read: their tiny receive
// buffers make the kernel drop almost everything at once, so ns/op is the
// cost of our code plus sendmmsg and the loopback delivery up to the full
// socket queue. They need no privilege.
//
// The receive benchmarks write the decapsulated frames to a real TAP device,
// created (up, without addresses) in a network namespace of its own so that
// nothing reaches the host's stack; they need root and skip without it.

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vxland/vxland/checksum"
	"github.com/vxland/vxland/encap"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/netio"
	"github.com/vxland/vxland/netio/memio"
	"github.com/vxland/vxland/offload"
	"github.com/vxland/vxland/stats"
)

const (
	benchVNI = 42
	// benchFrameLen is the inner Ethernet frame of the single-frame
	// benchmarks: a full-sized frame behind a 1500-byte underlay.
	benchFrameLen = 1450
	// benchMSS is the TCP MSS of a 1450-byte inner IP MTU with timestamps
	// (what a Linux sender uses behind vxlan), the GSO benchmark's gso_size.
	benchMSS = 1398
	// benchGSOSegments is how many MSS-sized segments the GSO super-frame
	// holds: 46 * 1398 = 64308 payload bytes, a 64348-byte IP packet.
	benchGSOSegments = 46
)

var (
	benchOurMAC  = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x00, 0xaa} // the TAP's
	benchPeerMAC = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x00, 0x01} // a remote host
	benchDstMAC  = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x00, 0x02} // a host behind us
	benchBcast   = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	benchSrcIP   = [4]byte{203, 0, 113, 1}
	benchDstIP   = [4]byte{203, 0, 113, 2}
	benchLocal   = netip.MustParseAddr("127.0.0.1")
	// benchRemote is the outer source address of received datagrams.
	benchRemote = netip.MustParseAddr("192.0.2.2")
)

// tcp4Frame returns an untagged Ethernet/IPv4/TCP frame (ACK, no options)
// from src to dst with payloadLen bytes of payload and sequence number seq.
// The TCP checksum is complete, or the pseudo-header seed a sender using
// checksum offload leaves (CHECKSUM_PARTIAL) when seeded is set.
func tcp4Frame(dst, src [6]byte, payloadLen int, seq uint32, seeded bool) []byte {
	const l3, l4 = 14, 34
	f := make([]byte, l4+20+payloadLen)
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:14], 0x0800)
	ip := f[l3:l4]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(f)-l3))
	binary.BigEndian.PutUint16(ip[4:6], 0x1234)
	ip[6] = 0x40 // DF
	ip[8] = 64
	ip[9] = 6
	copy(ip[12:16], benchSrcIP[:])
	copy(ip[16:20], benchDstIP[:])
	binary.BigEndian.PutUint16(ip[10:12], ^checksum.Fold(checksum.Sum(ip, 0)))
	th := f[l4:]
	binary.BigEndian.PutUint16(th[0:2], 40000)
	binary.BigEndian.PutUint16(th[2:4], 5201)
	binary.BigEndian.PutUint32(th[4:8], seq)
	binary.BigEndian.PutUint32(th[8:12], 1)
	th[12] = 5 << 4
	th[13] = 0x10 // ACK
	binary.BigEndian.PutUint16(th[14:16], 501)
	for i := range th[20:] {
		th[20+i] = byte(i * 7)
	}
	l4len := len(th)
	pseudo := checksum.PseudoV4(ip[12:16], ip[16:20], 6, l4len)
	if seeded {
		binary.BigEndian.PutUint16(th[16:18], checksum.Fold(pseudo))
	} else {
		binary.BigEndian.PutUint16(th[16:18], ^checksum.Fold(checksum.Sum(th, pseudo)))
	}
	return f
}

// benchEndpoint returns an endpoint made by New over a real UDP underlay
// bound to 127.0.0.1 (an ephemeral port: no privilege needed, nothing else
// disturbed), serving one segment (VNI benchVNI) with table and dev as its
// device (an in-memory one when nil). With offload it probes UDP GSO and
// GRO as the daemon does. The endpoint is closed when the test ends.
func benchEndpoint(b testing.TB, offload bool, table *fdb.Table, dev netio.FrameDevice) (*Endpoint, *Segment) {
	b.Helper()
	ul, err := openUnderlay(udpConfig{Bind: benchLocal, Local: benchLocal, Queues: 1, Offload: offload, Overflow: new(stats.Counter), Logf: b.Logf})
	if err != nil {
		b.Fatal(err)
	}
	if table == nil {
		table = fdb.New(fdb.Options{})
	}
	ep, err := New(Config{Local: benchLocal, Offload: offload, Queues: 1, Underlay: ul, Logf: b.Logf,
		Segments: []SegmentConfig{benchSegmentConfig(benchVNI, table, dev, offload)}})
	if err != nil {
		ul.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() { ep.Close() })
	return ep, ep.Segments()[0]
}

// benchSegmentConfig is the configuration of a benchmark segment: learning
// on, MTU 1450, dev as its device (an in-memory one when nil).
func benchSegmentConfig(vni uint32, table *fdb.Table, dev netio.FrameDevice, offloadOn bool) SegmentConfig {
	if dev == nil {
		dev = memio.NewDevice(fmt.Sprintf("mem%d", vni), netio.FrameCaps{VnetHdr: offloadOn, TSO: offloadOn})
	}
	return SegmentConfig{VNI: vni, MAC: benchOurMAC, Table: table, Learning: true, Offload: offloadOn, MTU: 1450,
		Devices: []netio.FrameDevice{dev}}
}

// addSegment adds a benchmark segment for vni to ep.
func addSegment(b testing.TB, ep *Endpoint, vni uint32, table *fdb.Table) *Segment {
	b.Helper()
	s, err := ep.AddSegment(benchSegmentConfig(vni, table, nil, false))
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// txFor is a transmit worker's state for s, on its first queue.
func txFor(s *Segment) *txState { return newTxState(s.devs[0], s.ep.ul.NewSender()) }

// rxFor is receive worker 0 of ep, driven by hand (no Recv).
func rxFor(ep *Endpoint) *rxWorker { return newRxWorker(ep, 0, nil) }

// openSink opens a UDP socket on 127.0.0.1 that nobody reads, with the
// smallest receive buffer, and returns its port. UDP_GRO lets it take the
// benchmarks' UDP_SEGMENT trains whole, so the kernel does not split them
// only to drop the pieces.
func openSink(b testing.TB) uint16 {
	b.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if err := c.SetReadBuffer(0); err != nil {
		b.Fatal(err)
	}
	if rc, err := c.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1)
		})
	}
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

// sinkDest is a forwarding destination on a sink socket.
func sinkDest(b testing.TB) fdb.Dest {
	return fdb.Dest{IP: benchLocal, Port: openSink(b), VNI: benchVNI}
}

// checkTx fails the benchmark unless every one of want datagrams went out:
// a failed send would be a different (and allocating) code path.
func checkTx(b *testing.B, s *Segment, want uint64) {
	b.Helper()
	if e := s.c.txErrors.Load(); e != 0 {
		b.Fatalf("%d sendmmsg errors", e)
	}
	if got := s.c.txMessages.Load(); got != want {
		b.Fatalf("sent %d datagrams, want %d", got, want)
	}
}

// dropQueued empties the send queue the batch filled without sending, as
// flush does after sending: the no-send benchmarks measure the Go side alone.
func dropQueued(st *txState) {
	st.nq, st.npart, st.nhdr, st.segNext = 0, 0, 0, 0
}

// BenchmarkTransmitFrame forwards a 1450-byte frame to the unicast MAC of a
// static FDB entry: lookup, flow hash, socket choice, VXLAN header, queueing
// and the sendmmsg flush. batch=64 queues 64 frames per flush, as one TAP
// read of a busy transmit loop does; ns/frame is the cost of each.
// batch=64/no-send drops the queue instead of sending it: the Go side only.
func BenchmarkTransmitFrame(b *testing.B) {
	for _, bc := range []struct {
		batch int
		send  bool
	}{{1, true}, {64, true}, {64, false}} {
		batch := bc.batch
		name := fmt.Sprintf("batch=%d", batch)
		if !bc.send {
			name += "/no-send"
		}
		b.Run(name, func(b *testing.B) {
			table := fdb.New(fdb.Options{})
			if err := table.Add(benchDstMAC, sinkDest(b), fdb.Static); err != nil {
				b.Fatal(err)
			}
			_, s := benchEndpoint(b, false, table, nil)
			st := txFor(s)
			frame := tcp4Frame(benchDstMAC, benchPeerMAC, benchFrameLen-54, 1, false)
			b.SetBytes(int64(batch * len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				for range batch {
					s.forward(st, s.tune.Load(), frame)
				}
				if bc.send {
					s.flush(st)
				} else {
					dropQueued(st)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/frame")
			if bc.send {
				checkTx(b, s, uint64(b.N*batch))
			} else if got := st.frames; got != uint64(b.N*batch) {
				b.Fatalf("forwarded %d frames, want %d", got, b.N*batch)
			}
		})
	}
}

// BenchmarkTransmitBroadcast floods a 1450-byte broadcast frame to the three
// destinations of the all-zeros entry (head-end replication): three
// datagrams sharing the frame, each with its own header, one sendmmsg.
func BenchmarkTransmitBroadcast(b *testing.B) {
	table := fdb.New(fdb.Options{})
	for range 3 {
		if err := table.Append(fdb.Zero, sinkDest(b), fdb.Permanent); err != nil {
			b.Fatal(err)
		}
	}
	_, s := benchEndpoint(b, false, table, nil)
	st := txFor(s)
	frame := tcp4Frame(benchBcast, benchPeerMAC, benchFrameLen-54, 1, false)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		s.forward(st, s.tune.Load(), frame)
		s.flush(st)
	}
	checkTx(b, s, uint64(3*b.N))
}

// BenchmarkTransmitGSO forwards a 64 KB TCPv4 super-frame as a TAP with TSO
// hands it over (virtio-net header GSO_TCPV4, NEEDS_CSUM, gso_size 1398,
// checksum field holding the seed): segmentation into 46 frames with full
// checksums, VXLAN headers in place, then one UDP_SEGMENT send per train of
// up to 44 datagrams (udp-gso), or the 46 datagrams in one sendmmsg
// (sendmmsg, for kernels without UDP_SEGMENT). ns/segment is the cost of
// each inner frame.
func BenchmarkTransmitGSO(b *testing.B) {
	for _, gso := range []bool{true, false} {
		name := "udp-gso"
		if !gso {
			name = "sendmmsg"
		}
		b.Run(name, func(b *testing.B) {
			table := fdb.New(fdb.Options{})
			if err := table.Add(benchDstMAC, sinkDest(b), fdb.Static); err != nil {
				b.Fatal(err)
			}
			ep, s := benchEndpoint(b, true, table, nil)
			if gso && !ep.ulCaps.GSO {
				b.Skip("the kernel refuses UDP_SEGMENT")
			}
			ep.ulCaps.GSO = gso
			st := txFor(s)
			frame := tcp4Frame(benchDstMAC, benchPeerMAC, benchGSOSegments*benchMSS, 1, true)
			h := offload.VirtioNetHdr{
				Flags: offload.FlagNeedsCsum, GSOType: offload.GSOTCPv4,
				HdrLen: 54, GSOSize: benchMSS, CsumStart: 34, CsumOffset: 16,
			}
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				s.forwardGSO(st, s.tune.Load(), h, frame)
				s.flush(st)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchGSOSegments), "ns/segment")
			if bad := s.c.txBadGSO.Load(); bad != 0 {
				b.Fatalf("%d super-frames refused", bad)
			}
			if got, want := s.c.txFrames.Load(), uint64(b.N*benchGSOSegments); got != want {
				b.Fatalf("forwarded %d frames, want %d", got, want)
			}
			want := uint64(b.N * benchGSOSegments)
			if gso {
				want = uint64(b.N * 2) // two trains: 44 + 2 datagrams
			}
			checkTx(b, s, want)
		})
	}
}

// openBenchTAP creates a TAP device in a new network namespace and sets it
// up. The namespace has no addresses and no routes, so frames written to the
// TAP are dropped by its stack as soon as they arrive. The namespace lives
// as long as the TAP's descriptor (which holds a reference to it); the
// thread that created it is discarded by the runtime. It skips unless root.
func openBenchTAP(b *testing.B, vnetHdr bool) *TAP {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root: creates a TAP device in a network namespace")
	}
	type result struct {
		tap *TAP
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the goroutine ends locked, so the runtime ends the
		// thread rather than reuse it in the wrong namespace.
		runtime.LockOSThread()
		var r result
		defer func() { done <- r }()
		if r.err = unix.Unshare(unix.CLONE_NEWNET); r.err != nil {
			r.err = fmt.Errorf("unshare(CLONE_NEWNET): %w", r.err)
			return
		}
		if r.tap, r.err = OpenTAP(TAPOptions{Name: "vxbench0", VnetHdr: vnetHdr, GSO: vnetHdr}); r.err != nil {
			return
		}
		if r.err = setUp(r.tap.Name()); r.err != nil {
			r.tap.Close()
			r.tap = nil
		}
	}()
	r := <-done
	if r.err != nil {
		b.Fatal(r.err)
	}
	b.Cleanup(func() { r.tap.Close() })
	return r.tap
}

// setUp sets the interface name up, in the calling thread's namespace.
func setUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS %s: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS %s: %w", name, err)
	}
	return nil
}

// vxlanDatagram returns the UDP payload carrying frame on benchVNI.
func vxlanDatagram(frame []byte) []byte {
	d := make([]byte, encap.HeaderLen+len(frame))
	encap.PutHeader(d, benchVNI)
	copy(d[encap.HeaderLen:], frame)
	return d
}

// BenchmarkReceiveDatagram handles received VXLAN datagrams as the receive
// loop does: header check, VNI demux, inner checks, learning (a refresh of
// the sender's entry), ECN decapsulation, then the TAP write, by way of the
// coalescer and a writev with a virtio-net header (offload) or after
// software checksum completion with a plain write (plain). Each datagram
// carries a 1450-byte TCP segment with a complete checksum, as a remote
// vxland or kernel sends it over a real network.
//
// plain and offload handle and write one datagram per op. offload/batch=64
// hands 64 consecutive segments of one flow to the coalescer before the
// flush, as one recvmmsg of a bulk transfer does: they leave as two GSO
// writes (46 + 18 segments, the 64 KB IP limit); ns/datagram is the cost of
// each.
func BenchmarkReceiveDatagram(b *testing.B) {
	for _, bc := range []struct {
		name    string
		offload bool
		batch   int
		writes  int // TAP writes per op
	}{
		{"plain", false, 1, 1},
		{"offload", true, 1, 1},
		{"offload/batch=64", true, 64, 2},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tap := openBenchTAP(b, bc.offload)
			ep, s := benchEndpoint(b, bc.offload, nil, tap)
			w := rxFor(ep)
			payload := benchFrameLen - 54
			dgrams := make([][]byte, bc.batch)
			orig := make([][]byte, bc.batch)
			for i := range dgrams {
				dgrams[i] = vxlanDatagram(tcp4Frame(benchDstMAC, benchPeerMAC, payload, 1+uint32(i*payload), false))
				orig[i] = append([]byte(nil), dgrams[i]...)
			}
			op := func() {
				for _, d := range dgrams {
					w.receive(d, benchRemote, 0)
				}
				w.finish()
			}
			op() // learns the sender; from now on a refresh
			if s.c.learned.Load() != 1 {
				b.Fatalf("sender not learned: fdb_learned = %d", s.c.learned.Load())
			}
			for i := range dgrams {
				if string(dgrams[i]) != string(orig[i]) {
					b.Fatalf("datagram %d modified by the receive path: ops would differ", i)
				}
			}
			b.SetBytes(int64(bc.batch * (len(dgrams[0]) - encap.HeaderLen)))
			b.ReportAllocs()
			for b.Loop() {
				op()
			}
			if bc.batch > 1 {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*bc.batch), "ns/datagram")
			}
			for r := range encap.NumReasons {
				for _, c := range []*stats.Counter{ep.rxDrops[r], s.rxDrops[r]} {
					if c != nil && c.Load() != 0 {
						b.Fatalf("%d datagrams dropped (%v)", c.Load(), r)
					}
				}
			}
			if e := s.c.tapWriteErr.Load(); e != 0 {
				b.Fatalf("%d TAP write errors", e)
			}
			if bc.offload {
				if got, want := s.c.tapWrites.Load(), uint64((b.N+1)*bc.writes); got != want {
					b.Fatalf("%d TAP writes, want %d", got, want)
				}
			}
		})
	}
}
