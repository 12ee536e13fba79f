package testnet_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/vxland/vxland/internal/testnet"
)

// childEnv makes the test binary act as a helper process for the cleanup and
// sweep tests (see TestChildProcess).
const childEnv = "VXT_TESTNET_CHILD"

func TestMain(m *testing.M) { testnet.Main(m) }

// pair builds two namespaces joined by a veth pair eth0 <-> eth0 with 192.0.2.1/24
// and 192.0.2.2/24.
func pair(t *testing.T) (a, b *testnet.NS) {
	t.Helper()
	a, b = testnet.NewNS(t), testnet.NewNS(t)
	testnet.Link(t, a, "eth0", b, "eth0")
	a.Addr(t, "eth0", "192.0.2.1/24")
	b.Addr(t, "eth0", "192.0.2.2/24")
	return a, b
}

// vxlanPair adds kernel vxlan devices (VNI 40, port 4789) with overlay addresses
// 203.0.113.1/24 and 203.0.113.2/24 on top of pair.
func vxlanPair(t *testing.T) (a, b *testnet.NS) {
	t.Helper()
	a, b = pair(t)
	testnet.KernelVXLAN(t, a, testnet.VXLANOpts{Name: "vx0", VNI: 40, DstPort: 4789,
		Local: "192.0.2.1", Remote: "192.0.2.2", Dev: "eth0", Addr: "203.0.113.1/24"})
	testnet.KernelVXLAN(t, b, testnet.VXLANOpts{Name: "vx0", VNI: 40, DstPort: 4789,
		Local: "192.0.2.2", Remote: "192.0.2.1", Dev: "eth0", Addr: "203.0.113.2/24"})
	return a, b
}

func nsList(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v\n%s", err, out)
	}
	return string(out)
}

// hasNS reports whether `ip netns list` shows name (as a whole word).
func hasNS(list, name string) bool {
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return true
		}
	}
	return false
}

func TestVethPing(t *testing.T) {
	a, b := pair(t)
	a.Ping(t, "192.0.2.2", 3)
	b.Ping(t, "192.0.2.1", 3)
	if s := b.LinkStats(t, "eth0"); s.RxPackets == 0 || s.OperState != "UP" {
		t.Errorf("eth0 in %s after ping: %+v, want packets received and state UP", b.Name, s)
	}
}

func TestVethPingIPv6(t *testing.T) {
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	testnet.Link(t, a, "eth0", b, "eth0")
	a.Addr(t, "eth0", "2001:db8::1/64")
	b.Addr(t, "eth0", "2001:db8::2/64")
	a.Ping(t, "2001:db8::2", 3)
}

func TestPingUnreachable(t *testing.T) {
	a, _ := pair(t)
	out, err := a.TryPing("192.0.2.99", 1) // nobody has it: ARP fails
	if err == nil {
		t.Fatalf("ping of an absent host succeeded:\n%s", out)
	}
	t.Logf("expected failure: %v", err)
}

func TestKernelVXLANPingAndTransfer(t *testing.T) {
	a, b := vxlanPair(t)
	if out := a.Exec(t, "ip", "-d", "link", "show", "vx0"); !strings.Contains(out, "vxlan id 40") ||
		!strings.Contains(out, "dstport 4789") {
		t.Fatalf("vx0 is not the vxlan device asked for:\n%s", out)
	}
	a.Ping(t, "203.0.113.2", 3)
	before := b.Counter(t, "TcpInCsumErrors")
	res := testnet.TCPTransfer(t, a, b, "203.0.113.2", 8<<20)
	if res.Bytes != 8<<20 {
		t.Fatalf("transferred %d bytes, want %d", res.Bytes, 8<<20)
	}
	// And the other way, to exercise both directions of the tunnel.
	testnet.TCPTransfer(t, b, a, "203.0.113.1", 1<<20)
	if after := b.Counter(t, "TcpInCsumErrors"); after != before {
		t.Errorf("TcpInCsumErrors in %s went from %d to %d", b.Name, before, after)
	}
}

func TestKernelVXLANCapture(t *testing.T) {
	a, b := vxlanPair(t)
	c := b.Capture(t, "eth0", "udp")
	a.Ping(t, "203.0.113.2", 2)
	isVXLAN := func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeVXLAN) != nil }
	c.Wait(5*time.Second, isVXLAN)
	pkts := c.Stop()
	var n int
	for _, p := range pkts {
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		vx, _ := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
		if udp == nil || vx == nil {
			continue
		}
		n++
		if udp.DstPort != 4789 {
			t.Errorf("VXLAN packet to UDP port %d, want 4789", udp.DstPort)
		}
		if !vx.ValidIDFlag || vx.VNI != 40 {
			t.Errorf("VXLAN header: I flag %v, VNI %d; want I set and VNI 40", vx.ValidIDFlag, vx.VNI)
		}
		ip4, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ip4 == nil || !(ip4.SrcIP.Equal(net.ParseIP("192.0.2.1")) || ip4.SrcIP.Equal(net.ParseIP("192.0.2.2"))) {
			t.Errorf("outer IPv4 header %v, want the underlay addresses", ip4)
		}
	}
	if n == 0 {
		t.Fatalf("no VXLAN packet among %d captured:\n%s", len(pkts), c.Stderr())
	}
	// The inner frames decode too: ICMP between the overlay addresses.
	var icmp int
	for _, p := range pkts {
		if p.Layer(layers.LayerTypeICMPv4) != nil {
			icmp++
		}
	}
	if icmp == 0 {
		t.Errorf("no inner ICMP decoded among %d VXLAN packets", n)
	}
	t.Logf("%d packets captured, %d VXLAN, %d with inner ICMP", len(pkts), n, icmp)
}

func TestCleanup(t *testing.T) {
	testnet.RequireRoot(t)
	var names []string
	var pid int
	t.Run("build", func(t *testing.T) {
		a, b := pair(t)
		vx := testnet.KernelVXLAN(t, a, testnet.VXLANOpts{VNI: 7, Remote: "192.0.2.2", Dev: "eth0",
			Defaults: []string{"192.0.2.3"}})
		if fdb := a.Exec(t, "bridge", "fdb", "show", "dev", vx); !strings.Contains(fdb, "dst 192.0.2.2") ||
			!strings.Contains(fdb, "dst 192.0.2.3") {
			t.Fatalf("all-zeros entries of %s: want dst 192.0.2.2 and 192.0.2.3:\n%s", vx, fdb)
		}
		names = []string{a.Name, b.Name}
		pid = a.Start(t, "sleep", "600").Pid()
		b.Capture(t, "eth0", "")
		list := nsList(t)
		for _, n := range names {
			if !hasNS(list, n) {
				t.Fatalf("namespace %s missing while in use:\n%s", n, list)
			}
		}
	})
	list := nsList(t)
	for _, n := range names {
		if hasNS(list, n) {
			t.Errorf("namespace %s still listed after its test ended:\n%s", n, list)
		}
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("background process %d still running after its test ended", pid)
	}
}

// TestCleanupAfterAbort: a test that stops half-way (SkipNow takes the same
// runtime.Goexit path as t.Fatal) still removes its namespaces.
func TestCleanupAfterAbort(t *testing.T) {
	testnet.RequireRoot(t)
	var names []string
	t.Run("aborts", func(t *testing.T) {
		a, b := pair(t)
		names = []string{a.Name, b.Name}
		t.SkipNow()
	})
	list := nsList(t)
	for _, n := range names {
		if hasNS(list, n) {
			t.Errorf("namespace %s still listed after its test aborted:\n%s", n, list)
		}
	}
}

// TestCleanupAfterFailure runs a failing test in a child process and checks that
// the namespaces it built are gone afterwards.
func TestCleanupAfterFailure(t *testing.T) {
	testnet.RequireRoot(t)
	out, err := child(t, "fail")
	if err == nil {
		t.Fatalf("the deliberately failing child test passed:\n%s", out)
	}
	names := childNames(t, out)
	list := nsList(t)
	for _, n := range names {
		if hasNS(list, n) {
			t.Errorf("namespace %s of the failed child test still listed:\n%s", n, list)
		}
	}
}

// TestSweep: a child process creates namespaces and exits without its cleanups
// (as a killed test binary would); Sweep removes them.
func TestSweep(t *testing.T) {
	testnet.RequireRoot(t)
	out, err := child(t, "leak")
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	names := childNames(t, out)
	list := nsList(t)
	for _, n := range names {
		if !hasNS(list, n) {
			t.Fatalf("leaked namespace %s not present before the sweep:\n%s\nchild:\n%s", n, list, out)
		}
	}
	removed, err := testnet.Sweep()
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	list = nsList(t)
	for _, n := range names {
		if hasNS(list, n) || !slices.Contains(removed, n) {
			t.Errorf("namespace %s not swept (removed %v):\n%s", n, removed, list)
		}
	}
	// Our own live namespaces survive a sweep.
	a := testnet.NewNS(t)
	if _, err := testnet.Sweep(); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if !hasNS(nsList(t), a.Name) {
		t.Fatalf("Sweep removed %s, a namespace of this live process", a.Name)
	}
}

// child runs this test binary as a helper process in the given mode.
func child(t *testing.T, mode string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildProcess$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// childNames picks the namespace names a child printed as "NS: <name>".
func childNames(t *testing.T, out string) []string {
	t.Helper()
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if _, name, ok := strings.Cut(line, "NS: "); ok {
			names = append(names, strings.TrimSpace(name))
		}
	}
	if len(names) == 0 {
		t.Fatalf("child printed no namespace names:\n%s", out)
	}
	return names
}

// TestChildProcess is the helper process of TestCleanupAfterFailure and TestSweep.
func TestChildProcess(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("helper process for TestCleanupAfterFailure and TestSweep")
	}
	a, b := pair(t)
	a.Start(t, "sleep", "600")
	fmt.Printf("NS: %s\nNS: %s\n", a.Name, b.Name)
	switch mode {
	case "fail":
		t.Fatal("deliberate failure: the namespaces must be removed anyway")
	case "leak":
		os.Exit(0) // no cleanups run: the namespaces leak
	}
}

func TestAddrRangeRefused(t *testing.T) {
	a := testnet.NewNS(t)
	testnet.Link(t, a, "eth0", a, "eth1")
	for _, call := range []struct {
		name string
		fn   func(tb testing.TB)
	}{
		{"Addr 10.0.0.1/24", func(tb testing.TB) { a.Addr(tb, "eth0", "10.0.0.1/24") }},
		{"Addr 192.0.2.1/16", func(tb testing.TB) { a.Addr(tb, "eth0", "192.0.2.1/16") }},
		{"Ping 10.0.0.1", func(tb testing.TB) { a.Ping(tb, "10.0.0.1", 1) }},
		{"Route via 10.0.0.1", func(tb testing.TB) { a.Route(tb, "198.51.100.0/24", "10.0.0.1") }},
		{"KernelVXLAN remote 10.0.0.1", func(tb testing.TB) {
			testnet.KernelVXLAN(tb, a, testnet.VXLANOpts{VNI: 1, Remote: "10.0.0.1", Dev: "eth0"})
		}},
		{"TCPTransfer to 10.0.0.1", func(tb testing.TB) { testnet.TCPTransfer(tb, a, a, "10.0.0.1", 1) }},
	} {
		msg := expectFatal(t, call.fn)
		if !strings.Contains(msg, "documentation ranges") {
			t.Errorf("%s: failed with %q, want the address-range refusal", call.name, msg)
		}
	}
	if out := a.Exec(t, "ip", "addr", "show"); strings.Contains(out, "10.0.0.1") || strings.Contains(out, "/16") {
		t.Errorf("a refused address was assigned anyway:\n%s", out)
	}
	if _, err := a.TryPing("10.0.0.1", 1); err == nil || !strings.Contains(err.Error(), "documentation ranges") {
		t.Errorf("TryPing(10.0.0.1) = %v, want the address-range refusal", err)
	}
}

// fatalTB records a t.Fatal instead of failing the real test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper()           {}
func (f *fatalTB) Fatal(args ...any) { f.msg = fmt.Sprint(args...); runtime.Goexit() }
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fatalTB) FailNow() { f.msg = "FailNow"; runtime.Goexit() }

// expectFatal runs fn with a TB whose Fatal ends fn, and returns the message; it
// fails the test if fn returns normally.
func expectFatal(t *testing.T, fn func(testing.TB)) string {
	t.Helper()
	f := &fatalTB{TB: t}
	done := make(chan bool)
	go func() {
		returned := false
		defer func() { done <- returned }()
		fn(f)
		returned = true
	}()
	if <-done {
		t.Fatalf("call returned normally, want t.Fatal")
	}
	return f.msg
}

// TestDoIsolation: Do runs in the namespace, and no other goroutine ever sees a
// thread switched into one.
func TestDoIsolation(t *testing.T) {
	a := testnet.NewNS(t)
	testnet.Link(t, a, "inner0", a, "inner1")
	rootNS, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var inside string
	if err := a.Do(t, func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, i := range ifs {
			inside += i.Name + " "
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(inside, "inner0") || !strings.Contains(inside, "lo") {
		t.Fatalf("interfaces seen inside Do: %q, want inner0 and lo", inside)
	}

	// Many Do calls while other goroutines check which namespace their thread is in.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var leaks []string
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if ns, err := os.Readlink("/proc/thread-self/ns/net"); err == nil && ns != rootNS {
					mu.Lock()
					leaks = append(leaks, ns)
					mu.Unlock()
				}
				runtime.Gosched()
			}
		}()
	}
	var dwg sync.WaitGroup
	for range 50 {
		dwg.Add(1)
		go func() {
			defer dwg.Done()
			_ = a.TryDo(func() error { time.Sleep(time.Millisecond); return nil })
		}()
	}
	dwg.Wait()
	close(stop)
	wg.Wait()
	if len(leaks) > 0 {
		t.Fatalf("%d times a goroutine outside Do ran in another namespace (%s)", len(leaks), leaks[0])
	}
	if ns, _ := os.Readlink("/proc/thread-self/ns/net"); ns != rootNS {
		t.Fatalf("test goroutine's thread is in %s after Do, want %s", ns, rootNS)
	}
	if ns, _ := os.Readlink("/proc/self/ns/net"); ns != rootNS {
		t.Fatalf("main thread is in %s after Do, want %s", ns, rootNS)
	}
	// A panic inside comes back as an error.
	if err := a.Do(t, func() error { panic("boom") }); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Do with a panicking fn = %v, want the panic as an error", err)
	}
}

func TestStartProc(t *testing.T) {
	a := testnet.NewNS(t)
	p := a.Start(t, "sh", "-c", "echo started; ip -br link show lo; exit 3")
	err := p.Wait(10 * time.Second)
	if err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Wait = %v, want exit status 3", err)
	}
	if out := p.Output(); !strings.Contains(out, "started") || !strings.Contains(out, "lo") {
		t.Fatalf("Output = %q, want the echo and lo", out)
	}

	s := a.Start(t, "sh", "-c", "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done")
	s.WaitOutput(t, "ready", 10*time.Second)
	if err := s.Wait(100 * time.Millisecond); err == nil {
		t.Fatal("Wait on a running process returned nil, want a timeout")
	}
	s.Stop()
	if !s.Exited() || !strings.Contains(s.Output(), "got TERM") {
		t.Fatalf("after Stop: exited %v, output %q; want a SIGTERM handled", s.Exited(), s.Output())
	}
	// A process that ignores SIGTERM is killed after the grace period.
	k := a.Start(t, "sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done")
	k.WaitOutput(t, "ready", 10*time.Second)
	k.Stop()
	if !k.Exited() {
		t.Fatal("a process ignoring SIGTERM survived Stop")
	}
}

func TestSysctl(t *testing.T) {
	a := testnet.NewNS(t)
	root, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	want := "1"
	if strings.TrimSpace(string(root)) == "1" {
		want = "0"
	}
	a.SetSysctl(t, "net.ipv4.ip_forward", want)
	if got := a.Sysctl(t, "net.ipv4.ip_forward"); got != want {
		t.Errorf("Sysctl = %q after setting %q", got, want)
	}
	if got := strings.TrimSpace(a.Exec(t, "cat", "/proc/sys/net/ipv4/ip_forward")); got != want {
		t.Errorf("cat inside the namespace says %q, want %q", got, want)
	}
	if now, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); string(now) != string(root) {
		t.Errorf("root namespace's ip_forward changed from %q to %q", root, now)
	}
	if c := a.Nstat(t); len(c) == 0 {
		t.Error("Nstat returned no counters")
	}
}
