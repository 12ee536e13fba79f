// Package memio implements netio's FrameDevice and Underlay in memory, for
// tests of the data plane that need no privileges: frames and datagrams
// injected by the test are read by the engine, and what the engine writes
// or sends is recorded, in order, for the test to read.
package memio

import (
	"fmt"
	"net/netip"
	"os"
	"sync"

	"github.com/vxland/vxland/netio"
)

// queueLen bounds what may be injected ahead of the reader, and recorded
// ahead of the test.
const queueLen = 4096

// Device is an in-memory FrameDevice.
type Device struct {
	name    string
	caps    netio.FrameCaps
	in      chan []byte
	out     chan []byte
	closed  chan struct{}
	once    sync.Once
	mu      sync.Mutex
	failing error // what Write returns; nil: it records
}

// NewDevice returns a device with the given name and capabilities.
func NewDevice(name string, caps netio.FrameCaps) *Device {
	return &Device{name: name, caps: caps, in: make(chan []byte, queueLen), out: make(chan []byte, queueLen), closed: make(chan struct{})}
}

// Inject queues a frame (with its virtio-net header when the device has
// one) for Read; it keeps a copy.
func (d *Device) Inject(frame []byte) { d.in <- append([]byte(nil), frame...) }

// Written is where the frames the engine writes arrive, each its parts
// joined.
func (d *Device) Written() <-chan []byte { return d.out }

// FailWrites makes Write return err (nil: record again).
func (d *Device) FailWrites(err error) {
	d.mu.Lock()
	d.failing = err
	d.mu.Unlock()
}

// Read implements netio.FrameDevice.
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n := 0
	select {
	case f := <-d.in:
		sizes[0] = copy(bufs[0][offset:], f)
		n = 1
	case <-d.closed:
		return 0, fmt.Errorf("device %s: %w", d.name, os.ErrClosed)
	}
	for n < len(bufs) {
		select {
		case f := <-d.in:
			sizes[n] = copy(bufs[n][offset:], f)
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

// Write implements netio.FrameDevice.
func (d *Device) Write(parts [][]byte) error {
	d.mu.Lock()
	err := d.failing
	d.mu.Unlock()
	if err != nil {
		return err
	}
	var f []byte
	for _, p := range parts {
		f = append(f, p...)
	}
	select {
	case d.out <- f:
		return nil
	case <-d.closed:
		return fmt.Errorf("device %s: %w", d.name, os.ErrClosed)
	}
}

// Caps implements netio.FrameDevice.
func (d *Device) Caps() netio.FrameCaps { return d.caps }

// Name implements netio.FrameDevice.
func (d *Device) Name() string { return d.name }

// Close implements netio.FrameDevice.
func (d *Device) Close() error {
	d.once.Do(func() { close(d.closed) })
	return nil
}

// Sent is a datagram the engine sent: its parts joined, and its metadata.
type Sent struct {
	Payload []byte
	To      netip.AddrPort
	TOS     uint8
	TTL     uint8
	GSOSize int
	Flow    uint32
	// Inner is the super-frame description of a datagram sent whole.
	Inner netio.InnerGSO
}

// Underlay is an in-memory netio.Underlay.
type Underlay struct {
	caps   netio.UnderlayCaps
	port   uint16
	queues []*receiver
	sent   chan Sent
	closed chan struct{}
	once   sync.Once

	mu     sync.Mutex
	refuse func(netio.Datagram) error
	groups map[netip.Addr]bool
}

// NewUnderlay returns an underlay with the given capabilities, port and
// number of receive queues (at least one).
func NewUnderlay(caps netio.UnderlayCaps, port uint16, queues int) *Underlay {
	u := &Underlay{caps: caps, port: port, sent: make(chan Sent, queueLen), closed: make(chan struct{}), groups: map[netip.Addr]bool{}}
	for i := 0; i < max(queues, 1); i++ {
		u.queues = append(u.queues, &receiver{u: u, in: make(chan netio.Datagram, queueLen)})
	}
	return u
}

// Inject queues a datagram (payload, source, outer TOS, and a GRO segment
// size if it stands for a coalesced train) on receive queue q.
func (u *Underlay) Inject(q int, payload []byte, from netip.AddrPort, tos uint8, groSize int) {
	u.queues[q].in <- netio.Datagram{Buf: append([]byte(nil), payload...), N: len(payload), Addr: from, TOS: tos, GSOSize: groSize}
}

// InjectTruncated queues a datagram that did not fit the receive buffer.
func (u *Underlay) InjectTruncated(q int, from netip.AddrPort) {
	u.queues[q].in <- netio.Datagram{N: -1, Addr: from}
}

// Sent is where the datagrams the engine sends arrive, in order.
func (u *Underlay) Sent() <-chan Sent { return u.sent }

// Refuse makes Send refuse the messages f returns an error for (nil f:
// refuse none), as the kernel refuses some.
func (u *Underlay) Refuse(f func(netio.Datagram) error) {
	u.mu.Lock()
	u.refuse = f
	u.mu.Unlock()
}

// Joined reports whether group g is joined.
func (u *Underlay) Joined(g netip.Addr) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.groups[g]
}

type receiver struct {
	u  *Underlay
	in chan netio.Datagram
}

func (r *receiver) Recv(msgs []netio.Datagram) (int, error) {
	n := 0
	put := func(d netio.Datagram) {
		m := &msgs[n]
		if d.N < 0 || d.N > len(m.Buf) {
			m.N = -1
		} else {
			m.N = copy(m.Buf, d.Buf[:d.N])
		}
		m.Addr, m.TOS, m.GSOSize = d.Addr, d.TOS, d.GSOSize
		n++
	}
	select {
	case d := <-r.in:
		put(d)
	case <-r.u.closed:
		return 0, fmt.Errorf("underlay: %w", os.ErrClosed)
	}
	for n < len(msgs) {
		select {
		case d := <-r.in:
			put(d)
		default:
			return n, nil
		}
	}
	return n, nil
}

type sender struct{ u *Underlay }

func (s sender) Send(msgs []netio.Datagram) (int, error) {
	s.u.mu.Lock()
	refuse := s.u.refuse
	s.u.mu.Unlock()
	n := 0
	for i := range msgs {
		m := &msgs[i]
		m.Err = nil
		if refuse != nil {
			if m.Err = refuse(*m); m.Err != nil {
				continue
			}
		}
		var p []byte
		for _, part := range m.Parts {
			p = append(p, part...)
		}
		select {
		case s.u.sent <- Sent{Payload: p, To: m.Addr, TOS: m.TOS, TTL: m.TTL, GSOSize: m.GSOSize, Flow: m.Flow, Inner: m.Inner}:
			n++
		case <-s.u.closed:
			return n, fmt.Errorf("underlay: %w", os.ErrClosed)
		}
	}
	return n, nil
}

// Receivers implements netio.Underlay.
func (u *Underlay) Receivers() []netio.Receiver {
	rs := make([]netio.Receiver, len(u.queues))
	for i, q := range u.queues {
		rs[i] = q
	}
	return rs
}

// NewSender implements netio.Underlay.
func (u *Underlay) NewSender() netio.Sender { return sender{u} }

// Caps implements netio.Underlay.
func (u *Underlay) Caps() netio.UnderlayCaps { return u.caps }

// Port implements netio.Underlay.
func (u *Underlay) Port() uint16 { return u.port }

// JoinGroup implements netio.Underlay.
func (u *Underlay) JoinGroup(g netip.Addr) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.groups[g] = true
	return nil
}

// LeaveGroup implements netio.Underlay.
func (u *Underlay) LeaveGroup(g netip.Addr) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.groups, g)
	return nil
}

// Tick implements netio.Underlay.
func (u *Underlay) Tick() {}

// Close implements netio.Underlay.
func (u *Underlay) Close() error {
	u.once.Do(func() { close(u.closed) })
	return nil
}
