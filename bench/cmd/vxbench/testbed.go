package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Testbed addresses: documentation ranges only (RFC 5737).
const (
	underA     = "192.0.2.1" // underlay, namespace A
	underB     = "192.0.2.2" // underlay, namespace B
	overA      = "203.0.113.1"
	overB      = "203.0.113.2"
	prefixLen  = "/24"
	underMTU   = 1500
	overMTU    = 1450
	vni        = 40
	vxlanPort  = 4789
	iperfPort  = 5201
	vethA      = "ula" // underlay veth end in A
	vethB      = "ulb" // underlay veth end in B
	offloadOff = "tx off tso off gso off"
)

// sideKind is what terminates the tunnel in one namespace.
type sideKind int

const (
	sideNone     sideKind = iota // underlay only (the "veth" row)
	sideKernel                   // Linux vxlan device
	sideVxland                   // the vxland daemon
	sideBaseline                 // an older vxland binary (--baseline-bin)
	sideRelay                    // bench/relay (water + net.UDPConn)
	sideOVS                      // Open vSwitch userspace datapath
)

// system describes one row of the results: what runs in A and in B.
type system struct {
	Name string
	Desc string
	A, B sideKind
	// PeerOffloadsOff turns off tx checksum offload, TSO and GSO on B's
	// underlay veth, which the baselines need against a kernel peer
	// (seeded checksums; see docs/kernel-notes.md).
	PeerOffloadsOff bool
	// VxlandArgs are passed to the vxland of side A besides --vxland-args.
	VxlandArgs []string
	// Sysctls are set in A before its side starts ("key=value").
	Sysctls []string
}

// baselineSystem is the row of the --baseline-bin vxland: set up like VK,
// running the older binary, so the two compare side by side.
const baselineSystem = "VB"

// systems in their canonical (interleaving) order.
var allSystems = []system{
	{Name: "veth", Desc: "underlay veth alone, no tunnel", A: sideNone, B: sideNone},
	{Name: "K", Desc: "kernel vxlan <-> kernel vxlan (reference)", A: sideKernel, B: sideKernel},
	{Name: "VK", Desc: "vxland <-> kernel vxlan", A: sideVxland, B: sideKernel},
	{Name: "VT", Desc: "vxland --underlay tap (experimental: TCP super-frames sent whole through an underlay TAP) <-> kernel vxlan",
		A: sideVxland, B: sideKernel, VxlandArgs: []string{"--underlay", "tap"}, Sysctls: []string{"net.ipv4.conf.all.rp_filter=0"}},
	{Name: "VV", Desc: "vxland <-> vxland", A: sideVxland, B: sideVxland},
	{Name: baselineSystem, Desc: "vxland baseline: an older vxland binary against the kernel", A: sideBaseline, B: sideKernel},
	{Name: "N", Desc: "plain Go relay (water + net.UDPConn) <-> kernel vxlan", A: sideRelay, B: sideKernel, PeerOffloadsOff: true},
	{Name: "O", Desc: "Open vSwitch userspace datapath <-> kernel vxlan", A: sideOVS, B: sideKernel, PeerOffloadsOff: true},
}

func findSystem(name string) (system, bool) {
	for _, s := range allSystems {
		if strings.EqualFold(s.Name, name) {
			return s, true
		}
	}
	return system{}, false
}

// testbed is one pair of fresh namespaces with one system set up in them.
type testbed struct {
	r     *runner
	cfg   *config
	sys   system
	nsA   string
	nsB   string
	work  string  // folder for this testbed's logs and OVS state
	procs []*proc // everything started for this testbed, in start order
	// daemons are the userspace dataplane processes whose CPU time and
	// memory are measured (vxland, relay, ovs-vswitchd).
	daemons []*proc
	iperfd  *proc
}

// target is the address the client in A talks to in B.
func (tb *testbed) target() string {
	if tb.sys.A == sideNone {
		return underB
	}
	return overB
}

// nsExec returns the argument list that runs a command inside ns.
func nsExec(ns string, args ...string) []string {
	return append([]string{"netns", "exec", ns}, args...)
}

// newTestbed creates the namespaces and the underlay and brings up sys in
// them. On error the caller still has to call teardown.
func newTestbed(ctx context.Context, r *runner, cfg *config, sys system, round int) (*testbed, error) {
	tb := &testbed{
		r: r, cfg: cfg, sys: sys,
		nsA:  fmt.Sprintf("vxb-%d-a", os.Getpid()),
		nsB:  fmt.Sprintf("vxb-%d-b", os.Getpid()),
		work: filepath.Join(cfg.work, fmt.Sprintf("r%d-%s", round, sys.Name)),
	}
	if err := os.MkdirAll(tb.work, 0o755); err != nil {
		return tb, err
	}
	// Leftovers of an interrupted testbed of this same process.
	tb.deleteNamespaces()

	steps := [][]string{
		{"netns", "add", tb.nsA},
		{"netns", "add", tb.nsB},
		{"link", "add", vethA, "netns", tb.nsA, "mtu", itoa(underMTU), "type", "veth", "peer", "name", vethB, "netns", tb.nsB, "mtu", itoa(underMTU)},
		{"-n", tb.nsA, "link", "set", "lo", "up"},
		{"-n", tb.nsB, "link", "set", "lo", "up"},
		{"-n", tb.nsA, "addr", "add", underA + prefixLen, "dev", vethA},
		{"-n", tb.nsB, "addr", "add", underB + prefixLen, "dev", vethB},
		{"-n", tb.nsA, "link", "set", vethA, "up"},
		{"-n", tb.nsB, "link", "set", vethB, "up"},
	}
	for _, s := range steps {
		if err := r.ip(ctx, s...); err != nil {
			return tb, err
		}
	}
	if sys.PeerOffloadsOff && tb.cfg.offloadsOff {
		args := append([]string{"ethtool", "-K", vethB}, strings.Fields(offloadOff)...)
		if _, err := r.run(ctx, "ip", nsExec(tb.nsB, args...)...); err != nil {
			return tb, err
		}
	}
	for _, kv := range sys.Sysctls {
		if _, err := r.run(ctx, "ip", nsExec(tb.nsA, "sysctl", "-qw", kv)...); err != nil {
			return tb, err
		}
	}
	if err := tb.setupSide(ctx, sys.A, tb.nsA, vethA, underA, underB, overA); err != nil {
		return tb, fmt.Errorf("side A: %w", err)
	}
	if err := tb.setupSide(ctx, sys.B, tb.nsB, vethB, underB, underA, overB); err != nil {
		return tb, fmt.Errorf("side B: %w", err)
	}
	if err := tb.waitReady(ctx); err != nil {
		return tb, err
	}
	return tb, tb.startIperfServer(ctx)
}

// setupSide brings up one tunnel endpoint of the given kind in ns.
func (tb *testbed) setupSide(ctx context.Context, kind sideKind, ns, ul, local, remote, overlay string) error {
	r := tb.r
	switch kind {
	case sideNone:
		return nil
	case sideKernel:
		steps := [][]string{
			{"-n", ns, "link", "add", "vx0", "type", "vxlan", "id", itoa(vni), "remote", remote, "local", local, "dstport", itoa(vxlanPort), "dev", ul},
			{"-n", ns, "link", "set", "vx0", "mtu", itoa(overMTU)},
			{"-n", ns, "addr", "add", overlay + prefixLen, "dev", "vx0"},
			{"-n", ns, "link", "set", "vx0", "up"},
		}
		for _, s := range steps {
			if err := r.ip(ctx, s...); err != nil {
				return err
			}
		}
		return nil
	case sideRelay:
		tap := tapName("rl", ns)
		args := nsExec(ns, tb.cfg.relayBin, "--vni", itoa(vni), "--remote", remote, "--local", local,
			"--dstport", itoa(vxlanPort), "--tap", tap)
		return tb.startDaemon(ctx, "relay", ns, tap, true, overlay, args)
	case sideVxland, sideBaseline:
		bin, extra := tb.cfg.vxlandBin, tb.cfg.vxlandArgs
		if ns == tb.nsA {
			extra = append(append([]string(nil), extra...), tb.sys.VxlandArgs...)
		}
		if kind == sideBaseline {
			bin, extra = tb.cfg.baselineBin, tb.cfg.baselineArgs
		}
		tap := tapName("vx", ns)
		// Only flags that every vxland since the first benchmarked
		// engine accepts; anything newer goes through --vxland-args or
		// --baseline-args.
		args := nsExec(ns, bin, "--vni", itoa(vni), "--remote", remote, "--local", local,
			"--dstport", itoa(vxlanPort), "--tap", tap, "--mtu", itoa(overMTU))
		args = append(args, extra...)
		return tb.startDaemon(ctx, "vxland", ns, tap, false, overlay, args)
	case sideOVS:
		return tb.setupOVS(ctx, ns, ul, local, remote, overlay)
	}
	return fmt.Errorf("unknown side kind %d", kind)
}

// tapName returns a TAP name unique to this vxbench process and side, such
// as "vx12345a". Names matter beyond the namespace: vxland derives its
// control socket path (/run/vxland/<tap>.sock) from it, and the file system
// is shared by both namespaces and by concurrent runs.
func tapName(prefix, ns string) string {
	return fmt.Sprintf("%s%d%s", prefix, os.Getpid()%1000000, ns[len(ns)-1:])
}

// startDaemon starts a TAP-based daemon in ns, waits for its TAP to appear
// and configures the overlay address on it.
func (tb *testbed) startDaemon(ctx context.Context, label, ns, tap string, setMTU bool, overlay string, args []string) error {
	p, err := tb.r.start(label, filepath.Join(tb.work, label+"-"+ns+".log"), nil, "ip", args...)
	if err != nil {
		return err
	}
	tb.procs = append(tb.procs, p)
	tb.daemons = append(tb.daemons, p)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if p.exited() {
			return fmt.Errorf("%s", p.describe())
		}
		if _, err := tb.r.run(ctx, "ip", "-n", ns, "link", "show", "dev", tap); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("TAP %s did not appear within 10 s: %s", tap, p.describe())
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	steps := [][]string{{"-n", ns, "addr", "add", overlay + prefixLen, "dev", tap}}
	if setMTU {
		steps = append(steps, []string{"-n", ns, "link", "set", tap, "mtu", itoa(overMTU)})
	}
	steps = append(steps, []string{"-n", ns, "link", "set", tap, "up"})
	for _, s := range steps {
		if err := tb.r.ip(ctx, s...); err != nil {
			return err
		}
	}
	return nil
}

// setupOVS runs ovsdb-server and ovs-vswitchd inside ns with private state
// and builds the two netdev bridges: br-ul holds the underlay veth and the
// VTEP address, br-ov holds the vxlan port and the overlay address.
func (tb *testbed) setupOVS(ctx context.Context, ns, ul, local, remote, overlay string) error {
	r := tb.r
	dir := filepath.Join(tb.work, "ovs-"+ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	env := []string{"OVS_RUNDIR=" + dir, "OVS_DBDIR=" + dir, "OVS_LOGDIR=" + dir, "OVS_SYSCONFDIR=" + dir}
	db := filepath.Join(dir, "conf.db")
	sock := filepath.Join(dir, "db.sock")
	if _, err := r.run(ctx, "ovsdb-tool", "create", db, tb.cfg.ovsSchema); err != nil {
		return err
	}
	dbsrv, err := r.start("ovsdb-server", filepath.Join(dir, "ovsdb-server.out"), env, "ip",
		nsExec(ns, "ovsdb-server", db, "--remote=punix:"+sock,
			"--pidfile="+filepath.Join(dir, "ovsdb-server.pid"),
			"--unixctl="+filepath.Join(dir, "ovsdb-server.ctl"),
			"--log-file="+filepath.Join(dir, "ovsdb-server.log"))...)
	if err != nil {
		return err
	}
	tb.procs = append(tb.procs, dbsrv)
	if err := waitFile(ctx, sock, dbsrv, 10*time.Second); err != nil {
		return err
	}
	vsctl := func(args ...string) error {
		_, err := r.run(ctx, "ovs-vsctl", append([]string{"--db=unix:" + sock, "--timeout=20"}, args...)...)
		return err
	}
	if err := vsctl("--no-wait", "init"); err != nil {
		return err
	}
	ctl := filepath.Join(dir, "ovs-vswitchd.ctl")
	vswitchd, err := r.start("ovs-vswitchd", filepath.Join(dir, "ovs-vswitchd.out"), env, "ip",
		nsExec(ns, "ovs-vswitchd", "unix:"+sock,
			"--pidfile="+filepath.Join(dir, "ovs-vswitchd.pid"),
			"--unixctl="+ctl,
			"--log-file="+filepath.Join(dir, "ovs-vswitchd.log"))...)
	if err != nil {
		return err
	}
	tb.procs = append(tb.procs, vswitchd)
	tb.daemons = append(tb.daemons, vswitchd)
	if err := waitFile(ctx, ctl, vswitchd, 10*time.Second); err != nil {
		return err
	}
	if err := vsctl(
		"add-br", "br-ul", "--", "set", "bridge", "br-ul", "datapath_type=netdev",
		"--", "add-port", "br-ul", ul,
		"--", "add-br", "br-ov", "--", "set", "bridge", "br-ov", "datapath_type=netdev",
		"--", "add-port", "br-ov", "vx0", "--", "set", "interface", "vx0", "type=vxlan",
		"options:remote_ip="+remote, "options:local_ip="+local,
		"options:key="+itoa(vni), "options:dst_port="+itoa(vxlanPort),
		"--", "set", "interface", "br-ov", "mtu_request="+itoa(overMTU),
	); err != nil {
		return fmt.Errorf("%w; %s", err, vswitchd.describe())
	}
	steps := [][]string{
		{"-n", ns, "addr", "flush", "dev", ul},
		{"-n", ns, "addr", "add", local + prefixLen, "dev", "br-ul"},
		{"-n", ns, "link", "set", "br-ul", "up"},
		{"-n", ns, "addr", "add", overlay + prefixLen, "dev", "br-ov"},
		{"-n", ns, "link", "set", "br-ov", "up"},
	}
	for _, s := range steps {
		if err := r.ip(ctx, s...); err != nil {
			return err
		}
	}
	// Seed OVS's tunnel neighbour cache with the peer's underlay MAC so that
	// the first encapsulated packets are not lost to ARP snooping.
	peerNS, peerDev := tb.nsB, vethB
	if ns == tb.nsB {
		peerNS, peerDev = tb.nsA, vethA
	}
	if mac, err := tb.linkMAC(ctx, peerNS, peerDev); err == nil {
		_, _ = r.run(ctx, "ovs-appctl", "-t", ctl, "tnl/arp/set", "br-ul", remote, mac)
	}
	return nil
}

// linkMAC returns the Ethernet address of dev in ns.
func (tb *testbed) linkMAC(ctx context.Context, ns, dev string) (string, error) {
	out, err := tb.r.run(ctx, "ip", "-j", "-n", ns, "link", "show", "dev", dev)
	if err != nil {
		return "", err
	}
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) == 0 {
		return "", fmt.Errorf("parse ip -j link: %v", err)
	}
	return links[0].Address, nil
}

// waitFile waits until path exists, failing early if p exits.
func waitFile(ctx context.Context, path string, p *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s", p.describe())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %v: %s", path, timeout, p.describe())
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitReady pings from A to B until a reply comes back (ARP resolved, OVS
// routes learned), for at most 15 s.
func (tb *testbed) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := tb.ping(ctx, 3, 100*time.Millisecond, 300*time.Millisecond)
		if err == nil && res.Received > 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, p := range tb.daemons {
			if p.exited() {
				return fmt.Errorf("%s", p.describe())
			}
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("no reply")
			}
			return fmt.Errorf("%s does not answer pings from A after 15 s: %v", tb.target(), err)
		}
	}
}

// startIperfServer runs iperf3 -s in B, bound to the target address, and
// waits until it listens.
func (tb *testbed) startIperfServer(ctx context.Context) error {
	if tb.iperfd != nil {
		tb.r.stop(tb.iperfd)
	}
	p, err := tb.r.start("iperf3-server", filepath.Join(tb.work, "iperf3-server.log"), nil, "ip",
		nsExec(tb.nsB, "iperf3", "-s", "-B", tb.target(), "-p", itoa(iperfPort), "--rcv-timeout", "10000")...)
	if err != nil {
		return err
	}
	tb.iperfd = p
	tb.procs = append(tb.procs, p)
	return tb.waitIperfListening(ctx, 5*time.Second)
}

// waitIperfListening waits until the iperf3 server in B listens. Between
// tests the server may briefly close its listening socket.
func (tb *testbed) waitIperfListening(ctx context.Context, timeout time.Duration) error {
	p := tb.iperfd
	deadline := time.Now().Add(timeout)
	for {
		out, err := tb.r.run(ctx, "ip", nsExec(tb.nsB, "ss", "-Hltn", "sport = :"+itoa(iperfPort))...)
		if err == nil && strings.TrimSpace(out) != "" {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s", p.describe())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("iperf3 server not listening after %v: %s", timeout, p.describe())
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// deadDaemon returns a description of the first measured daemon that has
// exited, or "".
func (tb *testbed) deadDaemon() string {
	for _, p := range tb.daemons {
		if p.exited() {
			return p.describe()
		}
	}
	return ""
}

// teardown stops every process of the testbed, then any process still left
// inside its namespaces, and deletes the namespaces (which removes the veth,
// TAP and vxlan devices with them).
func (tb *testbed) teardown() {
	if tb == nil {
		return
	}
	for i := len(tb.procs) - 1; i >= 0; i-- {
		tb.r.stop(tb.procs[i])
	}
	tb.deleteNamespaces()
}

// deleteNamespaces kills what is left in this testbed's namespaces (only
// processes started by this run can be there) and deletes them.
func (tb *testbed) deleteNamespaces() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, ns := range []string{tb.nsA, tb.nsB} {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
			continue
		}
		killNamespacePids(ctx, tb.r, ns)
		_, _ = tb.r.run(ctx, "ip", "netns", "del", ns)
	}
}

// killNamespacePids sends SIGKILL to each process listed by `ip netns pids`.
func killNamespacePids(ctx context.Context, r *runner, ns string) {
	out, err := r.run(ctx, "ip", "netns", "pids", ns)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
