package interop

import (
	"fmt"
	"testing"

	"github.com/vxland/vxland/internal/testnet"
)

// TestUnderlayTAPKernel runs vxland with --underlay tap against the kernel
// vxlan driver: the outer packets leave through the underlay TAP and the
// host's forwarding, TCP super-frames whole. Both directions carry a
// verified 64 MiB, and the peer receives far fewer UDP datagrams than the
// TCP segments vxland sent: it decapsulated super-frames (tunnel GSO), not
// one datagram per segment; likewise for IPv6 inside the tunnel.
func TestUnderlayTAPKernel(t *testing.T) {
	testnet.RequireRoot(t)
	for _, c := range []struct {
		offload bool
		rpf     string
	}{{true, "0"}, {false, "0"}, {true, "2"}} {
		t.Run(fmt.Sprintf("offload=%v,rp_filter=%s", c.offload, c.rpf), func(t *testing.T) { underlayTAPKernel(t, c.offload, c.rpf) })
	}
}

// underlayTAPKernel runs TestUnderlayTAPKernel with offloads on or off and
// net.ipv4.conf.all.rp_filter at rpf in vxland's namespace. Loose
// filtering (2) needs an address on the TAP: vxland puts the local one
// there, and the host's own stays usable once the TAP is gone.
func underlayTAPKernel(t *testing.T, offload bool, rpf string) {
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	a.SetSysctl(t, "net.ipv4.conf.all.rp_filter", rpf)
	underlay(t, a, b, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	testnet.KernelVXLAN(t, b, testnet.VXLANOpts{
		VNI: 40, Remote: "192.0.2.1", Local: "192.0.2.2", Dev: "ul0", Addr: "203.0.113.2/24",
	})
	d := startVxland(t, a, "vxt0", "--vni", "40", "--remote", "192.0.2.2", "--local", "192.0.2.1",
		"--addr", "203.0.113.1/24", "--up", "--underlay", "tap", fmt.Sprintf("--offload=%v", offload))
	if !linkExists(a, "vxt0u") {
		testnet.SkipOrFail(t, "no underlay TAP vxt0u: the kernel refuses UDP tunnel GSO on TAPs (Linux 6.17 or later)")
	}
	for key, want := range map[string]string{
		"net.ipv4.conf.vxt0u.forwarding": "1", "net.ipv4.conf.vxt0u.accept_local": "1", "net.ipv4.conf.vxt0u.rp_filter": "0",
		"net.ipv4.ip_forward": "0", // forwarding on the TAP alone
	} {
		if got := a.Sysctl(t, key); got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}

	a.Ping(t, "203.0.113.2", 2)
	udp0, st0 := b.Counter(t, "UdpInDatagrams"), d.stats(t)
	tap0 := a.LinkStats(t, "vxt0u").RxPackets
	transfer(t, a, b, "203.0.113.2", largeTransfer, d)
	udp1, st1 := b.Counter(t, "UdpInDatagrams"), d.stats(t)
	tap1 := a.LinkStats(t, "vxt0u").RxPackets
	udp, segs := udp1-udp0, st1["tx_frames"]-st0["tx_frames"]
	t.Logf("peer received %d UDP datagrams for %d TCP segments sent (%d tx_messages, %d frames through the underlay TAP)",
		udp, segs, st1["tx_messages"]-st0["tx_messages"], tap1-tap0)
	if segs < largeTransfer/1500 {
		t.Fatalf("vxland counted %d segments for %d bytes", segs, largeTransfer)
	}
	// Every datagram went through the underlay TAP (the host counts what
	// it receives on it), none through the sockets.
	if tap1-tap0 < st1["tx_messages"]-st0["tx_messages"] {
		t.Errorf("%d frames through the underlay TAP for %d messages sent", tap1-tap0, st1["tx_messages"]-st0["tx_messages"])
	}
	if offload && udp*4 >= segs {
		t.Errorf("tunnel GSO did not engage: the peer received %d UDP datagrams for %d segments", udp, segs)
	}
	transfer(t, b, a, "203.0.113.1", largeTransfer, d)
	if offload && rpf == "0" {
		// Inner IPv6 in outer IPv4: GSO_TCPV6 | UDP_TUNNEL_IPV4.
		a.Addr(t, "vxt0", "2001:db8:40::1/64")
		b.Addr(t, "vxlan40", "2001:db8:40::2/64")
		a.Ping(t, "2001:db8:40::2", 2)
		udp0, st0 = b.Counter(t, "UdpInDatagrams"), d.stats(t)
		transfer(t, a, b, "2001:db8:40::2", largeTransfer, d)
		udp, segs = b.Counter(t, "UdpInDatagrams")-udp0, d.stats(t)["tx_frames"]-st0["tx_frames"]
		t.Logf("IPv6 inside: peer received %d UDP datagrams for %d TCP segments sent", udp, segs)
		if udp*4 >= segs {
			t.Errorf("tunnel GSO did not engage for IPv6 inside: %d UDP datagrams for %d segments", udp, segs)
		}
	}
	checkClean(t, d)
	d.stop(t)
	if linkExists(a, "vxt0u") {
		t.Error("the underlay TAP outlived vxland")
	}
	a.Ping(t, "192.0.2.2", 1) // the underlay address still works
}

// TestUnderlayTAPRefusals checks that --underlay tap refuses what it cannot
// serve with a clear message and leaves no device behind: an IPv6
// underlay, no --local, and a strict reverse-path filter (set in the
// test's namespace only).
func TestUnderlayTAPRefusals(t *testing.T) {
	testnet.RequireRoot(t)
	ns := testnet.NewNS(t)
	ns.Exec(t, "ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul0p")
	ns.Exec(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "ul0")
	ns.Exec(t, "ip", "addr", "add", "2001:db8::1/64", "dev", "ul0", "nodad")
	ns.Exec(t, "ip", "link", "set", "ul0", "up")
	ns.SetSysctl(t, "net.ipv4.conf.all.rp_filter", "0")
	for _, tc := range []struct {
		name   string
		args   []string
		strict bool
		want   string
	}{
		{"ipv6", []string{"--local", "2001:db8::1", "--remote", "2001:db8::2"}, false, "IPv6 underlays are not supported"},
		{"no local", []string{"--remote", "192.0.2.2"}, false, "needs local"},
		{"strict rp_filter", []string{"--local", "192.0.2.1", "--remote", "192.0.2.2"}, true, "net.ipv4.conf.all.rp_filter is 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.strict {
				ns.SetSysctl(t, "net.ipv4.conf.all.rp_filter", "1")
				defer ns.SetSysctl(t, "net.ipv4.conf.all.rp_filter", "0")
			}
			args := append([]string{"--tap", "vxr0", "--vni", "5", "--underlay", "tap", "--control", t.TempDir() + "/c.sock"}, tc.args...)
			expectSetupError(t, ns, []string{tc.want}, args...)
			for _, dev := range []string{"vxr0", "vxr0u"} {
				if linkExists(ns, dev) {
					t.Errorf("refused start left %s behind", dev)
				}
			}
		})
	}
}
