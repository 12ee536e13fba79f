package dataplane

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vxland/vxland/netio"
	"github.com/vxland/vxland/stats"
)

func TestDropsDelta(t *testing.T) {
	for _, tc := range []struct{ last, cur, want uint32 }{
		{0, 0, 0},
		{0, 5, 5},
		{5, 5, 0},
		{5, 12, 7},
		{0xfffffffe, 3, 5}, // the kernel's 32-bit count wrapped
		{12, 5, 0},         // behind: not growth
		{1 << 31, 0, 0},
	} {
		if got := dropsDelta(tc.last, tc.cur); got != tc.want {
			t.Errorf("dropsDelta(%d, %d) = %d, want %d", tc.last, tc.cur, got, tc.want)
		}
	}
}

// kernelDrops returns the socket's drop count as the kernel keeps it.
func kernelDrops(t *testing.T, fd int) uint32 {
	t.Helper()
	var mem [9]uint32
	l := uint32(unsafe.Sizeof(mem))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&l)), 0); e != 0 {
		t.Fatalf("getsockopt(SO_MEMINFO): %v", e)
	}
	return mem[skMeminfoDrops]
}

// pinToOneCPU keeps the calling goroutine on one thread and that thread on
// one CPU until the test ends. Loopback datagrams are queued to the
// sending CPU's backlog and handled in order from there, so datagrams sent
// from one CPU reach the receiving socket in the order they were sent.
func pinToOneCPU(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("sched_getaffinity: %v", err)
	}
	var one unix.CPUSet
	for cpu := 0; cpu < 1024; cpu++ {
		if old.IsSet(cpu) {
			one.Set(cpu)
			break
		}
	}
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("sched_setaffinity: %v", err)
	}
	t.Cleanup(func() {
		_ = unix.SchedSetaffinity(0, &old)
		runtime.UnlockOSThread()
	})
}

// TestSocketOverflowCounted fills the queue of a receive socket with a
// small SO_RCVBUF while nobody reads it, so that the kernel drops
// datagrams, then reads it the way the receive loop does: the drops are
// counted once each, as the kernel counted them, and a second overflow adds
// only its own drops (the kernel's count is cumulative).
//
// The barrier is a sentinel datagram sent after the filling ones from the
// same socket and CPU: it is queued after every one of them was queued or
// dropped, so once it is read, the kernel's count is final.
func TestSocketOverflowCounted(t *testing.T) {
	pinToOneCPU(t)
	local := netip.MustParseAddr("127.0.0.1")
	s, err := openUDP(local, 0, false, defaultBatch)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	var set stats.Set
	c := set.New("rx_socket_overflow")
	if err := s.countOverflow(c); err != nil {
		t.Fatal(err)
	}
	// The smallest buffer the kernel allows: a few datagrams.
	if err := s.setInt(unix.SOL_SOCKET, unix.SO_RCVBUF, 1, "SO_RCVBUF"); err != nil {
		t.Fatal(err)
	}
	snd, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: local.AsSlice(), Port: int(s.port)})
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()

	msgs := make([]netio.Datagram, defaultBatch)
	for i := range msgs {
		msgs[i].Buf = make([]byte, 2048)
	}
	fill := bytes.Repeat([]byte{'f'}, 1400)
	sentinel := []byte("sentinel")

	var total uint64
	for round := 1; round <= 2; round++ {
		for i := 0; i < 64; i++ {
			if _, err := snd.Write(fill); err != nil {
				t.Fatal(err)
			}
		}
		// Read what the queue holds, send the sentinel behind it, and read
		// until it arrives. A sentinel dropped because the queue filled up
		// again is itself counted by the kernel, and is sent again once
		// the queue is empty (recv gives up after a second).
		sent, got := 0, false
		for !got {
			if err := s.file.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			n, err := s.Recv(msgs)
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded) && sent > 0 && sent < 10:
				n = 0 // the sentinel was dropped
			case err != nil:
				t.Fatalf("round %d, after %d sentinels: %v", round, sent, err)
			}
			for i := 0; i < n; i++ {
				if bytes.Equal(msgs[i].Buf[:msgs[i].N], sentinel) {
					got = true
				}
			}
			if !got && (sent == 0 || n == 0) {
				if _, err := snd.Write(sentinel); err != nil {
					t.Fatal(err)
				}
				sent++
			}
		}
		s.pollOverflow() // as the endpoint's tick does once a second
		want := kernelDrops(t, s.fd)
		if uint64(want) <= total {
			t.Fatalf("round %d: the kernel dropped nothing more (%d in all): the buffer held 64 datagrams of 1400 bytes", round, want)
		}
		total = uint64(want)
		if got := c.Load(); got != total {
			t.Errorf("round %d: rx_socket_overflow = %d, the kernel dropped %d", round, got, total)
		}
	}
}

// BenchmarkReceiveSocket receives batches of 64 datagrams of 200 bytes
// through recv, as the receive loop does: one recvmmsg per batch (more when
// the sender's loopback delivery lags), the source address and TOS parsed
// from every datagram's control messages, and a drop-count poll per batch
// (the endpoint polls once a second). It must report 0 allocs/op.
func BenchmarkReceiveSocket(b *testing.B) {
	local := netip.MustParseAddr("127.0.0.1")
	rx, err := openUDP(local, 0, false, defaultBatch)
	if err != nil {
		b.Fatal(err)
	}
	defer rx.close()
	if err := rx.setInt(unix.IPPROTO_IP, unix.IP_RECVTOS, 1, "IP_RECVTOS"); err != nil {
		b.Fatal(err)
	}
	var set stats.Set
	c := set.New("rx_socket_overflow")
	if err := rx.countOverflow(c); err != nil {
		b.Fatal(err)
	}
	tx, err := openUnderlay(udpConfig{Bind: local, Local: local, TxSockets: 1, Queues: 1, Overflow: new(stats.Counter), Logf: b.Logf})
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Close()
	sender := tx.NewSender()
	payload := bytes.Repeat([]byte{'d'}, 200)
	out := make([]netio.Datagram, defaultBatch)
	parts := [][]byte{payload}
	to := netip.AddrPortFrom(local, rx.port)
	send := func() {
		for i := range out {
			out[i] = netio.Datagram{Parts: parts, Addr: to, TTL: 64}
		}
		if n, err := sender.Send(out); n != len(out) {
			b.Fatalf("%d of %d datagrams sent: %v", n, len(out), err)
		}
	}
	msgs := make([]netio.Datagram, defaultBatch)
	for i := range msgs {
		msgs[i].Buf = make([]byte, 2048)
	}
	receive := func(want int) int {
		got := 0
		for got < want {
			n, err := rx.Recv(msgs)
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
		return got
	}

	dropped := c.Load()

	b.SetBytes(int64(defaultBatch * len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		send()
		receive(defaultBatch)
		rx.pollOverflow()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*defaultBatch), "ns/datagram")
	if d := c.Load() - dropped; d != 0 {
		b.Fatalf("%d datagrams dropped during the benchmark: receive counts would be off", d)
	}
}
