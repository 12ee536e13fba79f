package testnet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/pcapgo"
)

// captureStartTimeout bounds the wait for tcpdump to start listening.
const captureStartTimeout = 15 * time.Second

// Capture is a running packet capture (tcpdump inside a namespace) whose packets
// are decoded with gopacket.
type Capture struct {
	t      testing.TB
	ns     *NS
	ifname string
	proc   *Proc
	pcap   *syncBuffer // tcpdump -w - output
	errs   *syncBuffer // tcpdump's messages
	final  []gopacket.Packet
	done   bool
}

// Capture starts `tcpdump -U --immediate-mode -w -` on ifname inside the namespace
// with the given BPF filter (tcpdump syntax; "" captures everything) and returns
// once tcpdump reports that it is listening. The capture is stopped at cleanup if
// Stop was not called. It skips the test when tcpdump is not installed.
func (n *NS) Capture(t testing.TB, ifname, filter string) *Capture {
	t.Helper()
	requireTool(t, "tcpdump", "tcpdump")
	c := &Capture{t: t, ns: n, ifname: ifname, pcap: &syncBuffer{}, errs: &syncBuffer{}}
	// -Z root: tcpdump must not drop privileges (it writes to a pipe we own).
	// -s/-B: a 256 KiB default snaplen leaves a 2 MB ring only a few slots, and
	// bursts of small packets overflow it ("dropped by kernel").
	args := []string{"tcpdump", "-n", "-U", "--immediate-mode", "-Z", "root", "-s", "65600", "-B", "32768", "-i", ifname, "-w", "-"}
	if filter != "" {
		args = append(args, filter)
	}
	p, err := n.startProc(args, c.pcap, c.errs)
	if err != nil {
		t.Fatal(err)
	}
	c.proc = p
	t.Cleanup(func() {
		if !c.done {
			c.stop()
		}
	})
	Eventually(t, captureStartTimeout, func() error {
		if strings.Contains(c.errs.String(), "listening on") {
			return nil
		}
		if p.Exited() {
			return Permanent(fmt.Errorf("tcpdump on %s in %s exited (%v):\n%s", ifname, n.Name, p.err, c.errs.String()))
		}
		return fmt.Errorf("tcpdump on %s in %s is not listening yet:\n%s", ifname, n.Name, c.errs.String())
	})
	return c
}

// Packets decodes the packets captured so far, without stopping the capture.
func (c *Capture) Packets() []gopacket.Packet {
	c.t.Helper()
	if c.done {
		return c.final
	}
	pkts, err := decodePcap(c.pcap.Bytes(), true)
	if err != nil {
		c.t.Fatalf("testnet: capture on %s in %s: %v", c.ifname, c.ns.Name, err)
	}
	return pkts
}

// Wait polls the capture until a packet satisfies match and returns it; it fails
// the test if none arrives within timeout. Use it to be sure that an expected
// packet was captured before Stop.
func (c *Capture) Wait(timeout time.Duration, match func(gopacket.Packet) bool) gopacket.Packet {
	c.t.Helper()
	var found gopacket.Packet
	Eventually(c.t, timeout, func() error {
		pkts := c.Packets()
		for _, p := range pkts {
			if match(p) {
				found = p
				return nil
			}
		}
		if c.proc.Exited() {
			return Permanent(fmt.Errorf("tcpdump on %s in %s exited: %s", c.ifname, c.ns.Name, c.errs.String()))
		}
		return fmt.Errorf("no matching packet among %d captured on %s in %s", len(pkts), c.ifname, c.ns.Name)
	})
	return found
}

// Stop ends the capture and returns every packet captured, decoded. Packets still
// in flight when Stop is called may be missed; wait for the ones a test needs with
// Wait first. Calling Stop again returns the same packets.
func (c *Capture) Stop() []gopacket.Packet {
	c.t.Helper()
	if c.done {
		return c.final
	}
	if err := c.stop(); err != nil {
		c.t.Fatal(err)
	}
	return c.final
}

func (c *Capture) stop() error {
	c.done = true
	// Give tcpdump a moment to write out what the kernel already queued for it:
	// stop once its output has not grown for two polls (at most about 1 s).
	last, still := -1, 0
	for i := 0; i < 20 && still < 2; i++ {
		if l := c.pcap.Len(); l == last {
			still++
		} else {
			last, still = l, 0
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.proc.Stop()
	pkts, err := decodePcap(c.pcap.Bytes(), true)
	c.final = pkts
	if err != nil {
		return fmt.Errorf("testnet: capture on %s in %s: %w\ntcpdump said:\n%s", c.ifname, c.ns.Name, err, c.errs.String())
	}
	return nil
}

// Stderr returns tcpdump's messages (the "listening on" line, the summary after Stop).
func (c *Capture) Stderr() string { return c.errs.String() }

// decodePcap parses a pcap stream. When partial is set, a truncated last record
// (tcpdump still writing) or a missing header (nothing written yet) is fine.
func decodePcap(data []byte, partial bool) ([]gopacket.Packet, error) {
	if len(data) < 24 {
		if partial || len(data) == 0 {
			return nil, nil
		}
		return nil, fmt.Errorf("pcap stream of %d bytes has no complete header", len(data))
	}
	r, err := pcapgo.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("read pcap header: %w", err)
	}
	var pkts []gopacket.Packet
	for {
		raw, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return pkts, nil
		}
		if errors.Is(err, io.ErrUnexpectedEOF) && partial {
			return pkts, nil
		}
		if err != nil {
			return pkts, fmt.Errorf("read packet %d: %w", len(pkts)+1, err)
		}
		p := gopacket.NewPacket(raw, r.LinkType(), gopacket.Default)
		md := p.Metadata()
		md.CaptureInfo = ci
		pkts = append(pkts, p)
	}
}
