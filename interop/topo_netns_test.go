package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vxland/vxland/internal/testnet"
)

// netnsHosts builds the host namespace h (where vxland and its UDP socket
// run), a kernel peer b on the underlay 192.0.2.0/24 with the overlay
// addresses 203.0.113.2/24 and 198.51.100.2/32 on its vxlan device, and
// returns them. The underlay MTU is 1400, so that a TAP sized from the
// host's route to the peer gets 1350.
func netnsHosts(t *testing.T) (h, b *testnet.NS) {
	t.Helper()
	h, b = testnet.NewNS(t), testnet.NewNS(t)
	underlay(t, h, b, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	h.Exec(t, "ip", "link", "set", "ul0", "mtu", "1400")
	b.Exec(t, "ip", "link", "set", "ul0", "mtu", "1400")
	testnet.KernelVXLAN(t, b, testnet.VXLANOpts{Name: "vxlan0", VNI: 40, Remote: "192.0.2.1", Local: "192.0.2.2",
		Dev: "ul0", Addr: "203.0.113.2/24"})
	b.Addr(t, "vxlan0", "198.51.100.2/32")
	return h, b
}

// checkTAPInContainer checks that tap lives in c, configured, and nowhere
// in h, and that the UDP socket lives in h and not in c.
func checkTAPInContainer(t *testing.T, h, c *testnet.NS, tap, cidr string) {
	t.Helper()
	if linkExists(h, tap) {
		t.Errorf("TAP %s exists in the daemon's namespace %s; it belongs in %s:\n%s", tap, h, c, h.Exec(t, "ip", "link", "show"))
	}
	out := c.Exec(t, "ip", "addr", "show", "dev", tap)
	if !strings.Contains(out, "inet "+cidr+" ") {
		t.Errorf("--addr %s was not applied to %s in %s:\n%s", cidr, tap, c, out)
	}
	if !strings.Contains(out, ",UP") && !strings.Contains(out, "<UP") {
		t.Errorf("--up did not set %s up in %s:\n%s", tap, c, out)
	}
	if mtu := linkMTU(t, c, tap); mtu != 1350 {
		t.Errorf("TAP MTU %d in %s, want 1350: the host's underlay (MTU 1400) less 50", mtu, c)
	}
	if s := udpSockets(t, h, 4789); len(s) == 0 {
		t.Errorf("no UDP socket on port 4789 in the daemon's namespace %s", h)
	}
	if s := udpSockets(t, c, 4789); len(s) != 0 {
		t.Errorf("UDP sockets on port 4789 in the TAP's namespace %s; they belong in the daemon's:\n%s", c, strings.Join(s, "\n"))
	}
}

// TestTopoNetns creates vxland's TAP inside a container namespace with
// --netns while the daemon and its UDP socket stay in the host namespace,
// as a CNI plugin or a container runtime would use it. The container has
// no other interface and routes everything through the TAP.
func TestTopoNetns(t *testing.T) {
	testnet.RequireRoot(t)

	t.Run("name", func(t *testing.T) {
		h, b := netnsHosts(t)
		c := testnet.NewNS(t)
		d := startTopo(t, h, map[string]*testnet.NS{"vxt0": c}, "--tap", "vxt0", "--vni", "40",
			"--remote", "192.0.2.2", "--netns", c.Name, "--addr", "203.0.113.1/24", "--up")
		checkTAPInContainer(t, h, c, "vxt0", "203.0.113.1/24")
		if out := c.Exec(t, "ip", "-o", "link", "show"); strings.Count(strings.TrimSpace(out), "\n") != 1 {
			t.Errorf("the container should hold only lo and the TAP:\n%s", out)
		}
		// Inside the container only, and towards the TAP only.
		c.Exec(t, "ip", "route", "add", "default", "dev", "vxt0")

		c.Ping(t, "203.0.113.2", 2)
		c.Ping(t, "198.51.100.2", 2) // off-subnet: through the default route
		b.Ping(t, "203.0.113.1", 2)
		testnet.TCPTransfer(t, c, b, "198.51.100.2", 4<<20)
		testnet.TCPTransfer(t, b, c, "203.0.113.1", 4<<20)
		out := d.ctl(t, "fdb", "show", "dev", "vxt0")
		if kmac := macOf(t, b, "vxlan0"); !hasLine(out, kmac, "dst 192.0.2.2") {
			t.Errorf("vxland did not learn the kernel peer's MAC %s:\n%s", kmac, out)
		}
		d.stop(t)
	})

	t.Run("proc-path", func(t *testing.T) {
		h, b := netnsHosts(t)
		c := testnet.NewNS(t)
		sleeper := c.Start(t, "sleep", "600")
		path := fmt.Sprintf("/proc/%d/ns/net", sleeper.Pid())
		sameNS(t, path, filepath.Join("/run/netns", c.Name))
		d := startTopo(t, h, map[string]*testnet.NS{"vxp0": c}, "--tap", "vxp0", "--vni", "40",
			"--remote", "192.0.2.2", "--netns", path, "--addr", "203.0.113.3/24", "--up")
		checkTAPInContainer(t, h, c, "vxp0", "203.0.113.3/24")
		c.Ping(t, "203.0.113.2", 2)
		testnet.TCPTransfer(t, b, c, "203.0.113.3", 1<<20)
		d.stop(t)
	})

	t.Run("master-in-netns", func(t *testing.T) {
		h, b := netnsHosts(t)
		requireBridge(t, h)
		c := testnet.NewNS(t)
		newBridge(t, h, "brh") // in the daemon's namespace only
		newBridge(t, c, "brc") // in the container only
		c.Addr(t, "brc", "203.0.113.4/24")
		out := expectSetupError(t, h, []string{"brh"}, "--tap", "vxm0", "--vni", "40", "--remote", "192.0.2.2",
			"--netns", c.Name, "--master", "brh", "--up")
		if linkExists(c, "vxm0") || linkExists(h, "vxm0") {
			t.Errorf("a vxland that failed (%s) left its TAP behind", strings.TrimSpace(out))
		}

		d := startTopo(t, h, map[string]*testnet.NS{"vxm0": c}, "--tap", "vxm0", "--vni", "40",
			"--remote", "192.0.2.2", "--netns", c.Name, "--master", "brc", "--up")
		if out := c.Exec(t, "ip", "link", "show", "vxm0"); !strings.Contains(out, "master brc") {
			t.Fatalf("--master brc with --netns: the TAP is not a port of the container's bridge:\n%s", out)
		}
		c.Ping(t, "203.0.113.2", 2)
		testnet.TCPTransfer(t, b, c, "203.0.113.4", 1<<20)
		d.stop(t)
	})

	t.Run("errors", func(t *testing.T) {
		h := testnet.NewNS(t)
		testnet.Link(t, h, "ve0", h, "ve1") // a device that is not a bridge
		missing := testnet.NSPrefix + "no-such-ns"
		expectSetupError(t, h, []string{missing}, "--tap", "vxe0", "--vni", "40", "--netns", missing)
		if _, err := os.Stat(filepath.Join("/run/netns", missing)); err == nil {
			t.Errorf("vxland created the namespace %s instead of refusing", missing)
		}
		badPath := filepath.Join(t.TempDir(), "net")
		expectSetupError(t, h, []string{badPath}, "--tap", "vxe0", "--vni", "40", "--netns", badPath)
		notNS := filepath.Join(t.TempDir(), "plain-file")
		if err := os.WriteFile(notNS, []byte("not a namespace\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		expectSetupError(t, h, []string{notNS}, "--tap", "vxe0", "--vni", "40", "--netns", notNS)

		expectSetupError(t, h, []string{"nobr0"}, "--tap", "vxe0", "--vni", "40", "--master", "nobr0", "--up")
		expectSetupError(t, h, []string{"ve0", "bridge"}, "--tap", "vxe0", "--vni", "40", "--master", "ve0", "--up")
		if linkExists(h, "vxe0") {
			t.Error("a vxland that failed left its TAP vxe0 behind")
		}
	})
}

// sameNS waits until the two paths name the same namespace (a process
// started under ip netns exec enters its namespace shortly after it
// starts), and fails the test if they never do.
func sameNS(t *testing.T, a, b string) {
	t.Helper()
	testnet.Eventually(t, 5*time.Second, func() error {
		var sa, sb syscall.Stat_t
		if err := syscall.Stat(a, &sa); err != nil {
			return testnet.Permanent(err)
		}
		if err := syscall.Stat(b, &sb); err != nil {
			return testnet.Permanent(err)
		}
		if sa.Ino != sb.Ino || sa.Dev != sb.Dev {
			return fmt.Errorf("%s and %s are different namespaces", a, b)
		}
		return nil
	})
}
