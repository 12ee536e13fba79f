// Command vxbench is the system benchmark behind `make bench`.
//
// It builds a testbed of two network namespaces joined by a veth pair
// (underlay 192.0.2.0/24, MTU 1500), puts a VXLAN endpoint in each (overlay
// 203.0.113.0/24, MTU 1450, VNI 40, port 4789) and measures, interleaved and
// repeated, these systems:
//
//	K   kernel vxlan <-> kernel vxlan (the reference)
//	VK  vxland <-> kernel vxlan
//	VT  vxland --underlay tap <-> kernel vxlan (experimental)
//	VV  vxland <-> vxland
//	VB  an older vxland binary (--baseline-bin) <-> kernel vxlan
//	N   bench/relay, a plain Go relay <-> kernel vxlan (peer offloads off)
//	O   Open vSwitch userspace datapath <-> kernel vxlan (peer offloads off)
//	veth the underlay alone, measured once, for context
//
// Each round sets every system up in fresh namespaces, runs ping and iperf3
// (TCP 1 and 4 streams, UDP 64 and 1400 bytes, both directions), records CPU
// time and peak RSS of the userspace dataplane processes, and tears the
// namespaces down. Medians over rounds and ratios to K (from the same run) go
// to latest.md, latest.json and latest.svg in --out.
//
// Usage (as root, from the repository root):
//
//	vxbench [--rounds 3] [--duration 5s] [--systems K,VK,VV,N,O] [--out bench/results]
//	        [--baseline-bin bin/vxland-base [--baseline-name cf6a88a]]
//
// `vxbench ping` is an internal subcommand (an ICMP pinger run inside a
// namespace).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// config holds the command line and what was derived from it.
type config struct {
	rounds     int
	duration   time.Duration
	systems    []system
	tests      map[string]bool // iperf test keys and "ping"
	out        string
	bin        string
	repo       string
	pings      int
	veth       bool
	install    bool
	keep       bool
	verbose    bool
	cleanStale bool
	// offloadsOff turns off the kernel peer's veth offloads for N and O.
	offloadsOff bool
	vxlandArgs  []string
	// baselineBin is the older vxland binary run as system VB ("" = no VB);
	// baselineName says which build it is (a commit), for the report.
	baselineBin  string
	baselineName string
	baselineArgs []string

	work      string // scratch folder: logs, OVS state
	relayBin  string
	vxlandBin string
	ovsSchema string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "ping" {
		os.Exit(pingMain(os.Args[2:]))
	}
	os.Exit(benchMain())
}

// benchMain runs the benchmark and returns the exit code.
func benchMain() int {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "vxbench:", err)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "vxbench: needs root (network namespaces, veth, TAP)")
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	r := newRunner(cfg.verbose)
	// Whatever happens (error, signal, panic), stop what was started.
	defer r.stopAll()

	b := &bench{cfg: cfg, r: r, skipped: map[string]string{}}
	if err := b.prepare(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "vxbench:", err)
		return 1
	}
	if !cfg.keep {
		defer os.RemoveAll(cfg.work)
	}
	runErr := b.runRounds(ctx)
	if errors.Is(runErr, errInterrupted) {
		fmt.Fprintln(os.Stderr, "vxbench: interrupted; testbed removed; writing partial results")
	} else if runErr != nil {
		fmt.Fprintln(os.Stderr, "vxbench:", runErr)
	}
	paths, err := b.writeResults(errors.Is(runErr, errInterrupted))
	if err != nil {
		fmt.Fprintln(os.Stderr, "vxbench: writing results:", err)
		return 1
	}
	fmt.Println()
	fmt.Println(b.markdown)
	fmt.Printf("wrote %s\n", strings.Join(paths, ", "))
	if cfg.keep {
		fmt.Printf("logs kept in %s\n", cfg.work)
	}
	if runErr != nil {
		return 1
	}
	return 0
}

// parseFlags reads the command line.
func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("vxbench", flag.ContinueOnError)
	cfg := &config{}
	fs.IntVar(&cfg.rounds, "rounds", 3, "rounds; each round runs every system once, in order")
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "length of each iperf3 test (whole seconds)")
	systems := fs.String("systems", "K,VK,VV,N,O", "systems to measure, in interleaving order")
	tests := fs.String("tests", "all", "tests: all, or a list of tcp1,tcp4,udp64,udp1400,ping or keys such as tcp1_fwd")
	fs.StringVar(&cfg.out, "out", "bench/results", "folder for latest.md, latest.json, latest.svg")
	fs.StringVar(&cfg.bin, "bin", "", "folder for the relay and vxland binaries (default: a scratch folder)")
	fs.StringVar(&cfg.repo, "repo", "", "repository root (default: found from the working folder)")
	fs.StringVar(&cfg.vxlandBin, "vxland", "", "use this vxland binary instead of building ./cmd/vxland")
	vxArgs := fs.String("vxland-args", "", "extra arguments for vxland (VK, VT, VV), space separated (e.g. --offload=false)")
	fs.StringVar(&cfg.baselineBin, "baseline-bin", "", "an older vxland binary, measured as system VB beside VK (same setup, kernel peer)")
	bArgs := fs.String("baseline-args", "", "extra arguments for the --baseline-bin vxland (VB), space separated; --vxland-args are not passed to it")
	fs.StringVar(&cfg.baselineName, "baseline-name", "", "what the --baseline-bin build is (e.g. its commit), shown in the report")
	fs.IntVar(&cfg.pings, "pings", 200, "echo requests per RTT measurement (10 ms apart)")
	fs.BoolVar(&cfg.veth, "veth", true, "measure the bare underlay veth once (row \"veth\")")
	fs.BoolVar(&cfg.install, "install", true, "apt-get install missing packages (iperf3, ethtool, openvswitch-switch)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the scratch folder with daemon and OVS logs")
	fs.BoolVar(&cfg.verbose, "v", false, "print every command")
	fs.BoolVar(&cfg.offloadsOff, "peer-offloads-off", true, "for N and O, turn off tx/tso/gso on the kernel peer's veth (without it their TCP fails)")
	fs.BoolVar(&cfg.cleanStale, "clean-stale", false, "delete vxb-PID-* namespaces left by vxbench runs that are no longer alive")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: vxbench [flags]   (root; run from the repository root)\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.rounds < 1 {
		return nil, fmt.Errorf("--rounds must be at least 1")
	}
	if cfg.duration < time.Second {
		return nil, fmt.Errorf("--duration must be at least 1s")
	}
	if cfg.pings < 1 {
		return nil, fmt.Errorf("--pings must be at least 1")
	}
	seen := map[string]bool{}
	for _, name := range strings.Split(*systems, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		s, ok := findSystem(name)
		if !ok || s.Name == "veth" {
			return nil, fmt.Errorf("unknown system %q (want K, VK, VT, VV, VB, N, O; veth is --veth)", name)
		}
		if s.Name == baselineSystem && cfg.baselineBin == "" {
			return nil, fmt.Errorf("system %s needs --baseline-bin", baselineSystem)
		}
		if !seen[s.Name] {
			seen[s.Name] = true
			cfg.systems = append(cfg.systems, s)
		}
	}
	if len(cfg.systems) == 0 {
		return nil, fmt.Errorf("--systems is empty")
	}
	if cfg.baselineBin != "" && !seen[baselineSystem] {
		cfg.systems = insertBaseline(cfg.systems)
	}
	var err error
	if cfg.tests, err = parseTests(*tests); err != nil {
		return nil, err
	}
	cfg.vxlandArgs = strings.Fields(*vxArgs)
	cfg.baselineArgs = strings.Fields(*bArgs)
	return cfg, nil
}

// insertBaseline adds system VB to the interleaving order right after VK
// (at the end without VK), so that VK and VB run back to back in every round.
func insertBaseline(ss []system) []system {
	vb, _ := findSystem(baselineSystem)
	for i, s := range ss {
		if s.Name == "VK" {
			out := append([]system(nil), ss[:i+1]...)
			out = append(out, vb)
			return append(out, ss[i+1:]...)
		}
	}
	return append(ss, vb)
}

// parseTests expands the --tests list into test keys.
func parseTests(s string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, w := range strings.Split(s, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		matched := false
		if w == "all" || w == "ping" {
			out["ping"] = true
			matched = true
		}
		for _, t := range iperfTests {
			if w == "all" || w == t.Key || strings.HasPrefix(t.Key, w+"_") {
				out[t.Key] = true
				matched = true
			}
		}
		if !matched {
			return nil, fmt.Errorf("unknown test %q", w)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--tests is empty")
	}
	return out, nil
}

// bench is one benchmark run.
type bench struct {
	cfg     *config
	r       *runner
	skipped map[string]string // system -> why it is not measured
	notes   []string          // extra notes for the report
	samples []sample
	info    machineInfo
	started time.Time
	// baselineVersion is what the VB binary says with --version.
	baselineVersion string

	markdown string
}

// prepare checks tools, installs what is missing, builds the binaries and
// decides which systems can run.
func (b *bench) prepare(ctx context.Context) error {
	cfg := b.cfg
	b.started = time.Now()
	if cfg.repo == "" {
		root, err := findRepo()
		if err != nil {
			return err
		}
		cfg.repo = root
	}
	if !filepath.IsAbs(cfg.out) {
		cfg.out = filepath.Join(cfg.repo, cfg.out)
	}
	work, err := os.MkdirTemp("", fmt.Sprintf("vxb-%d-", os.Getpid()))
	if err != nil {
		return err
	}
	cfg.work = work
	if cfg.bin == "" {
		cfg.bin = filepath.Join(work, "bin")
	}
	if cfg.bin, err = filepath.Abs(cfg.bin); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.bin, 0o755); err != nil {
		return err
	}
	b.staleNamespaces(ctx)

	// Tools every system needs.
	for _, t := range []struct{ bin, pkg string }{{"ip", "iproute2"}, {"ss", "iproute2"}, {"iperf3", "iperf3"}} {
		if err := b.ensure(ctx, t.bin, t.pkg); err != nil {
			return err
		}
	}
	for _, s := range cfg.systems {
		switch s.Name {
		case "N":
			if err := b.ensure(ctx, "ethtool", "ethtool"); err != nil {
				b.skipped["N"] = err.Error()
				continue
			}
			cfg.relayBin = filepath.Join(cfg.bin, "relay")
			progress("building bench/relay")
			if err := b.goBuild(ctx, cfg.relayBin, "./bench/relay"); err != nil {
				b.skipped["N"] = "relay did not build: " + err.Error()
			}
		case "O":
			if err := b.ensure(ctx, "ethtool", "ethtool"); err != nil {
				b.skipped["O"] = err.Error()
				continue
			}
			if err := b.ensure(ctx, "ovs-vswitchd", "openvswitch-switch"); err != nil {
				b.skipped["O"] = "Open vSwitch not available: " + err.Error()
				continue
			}
			cfg.ovsSchema = "/usr/share/openvswitch/vswitch.ovsschema"
			if _, err := os.Stat(cfg.ovsSchema); err != nil {
				b.skipped["O"] = "Open vSwitch schema missing: " + err.Error()
			}
		}
	}
	if b.wants("VK") || b.wants("VT") || b.wants("VV") {
		if why := b.prepareVxland(ctx); why != "" {
			for _, n := range []string{"VK", "VT", "VV"} {
				if b.wants(n) {
					b.skipped[n] = why
				}
			}
		}
	}
	if b.wants(baselineSystem) {
		if why := b.prepareBaseline(ctx); why != "" {
			b.skipped[baselineSystem] = why
		}
	}
	for _, s := range cfg.systems {
		if why, ok := b.skipped[s.Name]; ok {
			progress("skipping %s: %s", s.Name, why)
		}
	}
	b.info = collectMachineInfo(ctx, b.r, cfg)
	return nil
}

// wants reports whether system name was requested.
func (b *bench) wants(name string) bool {
	for _, s := range b.cfg.systems {
		if s.Name == name {
			return true
		}
	}
	return false
}

// prepareVxland builds (or checks) the vxland binary; it returns why VK and
// VV cannot run, or "".
func (b *bench) prepareVxland(ctx context.Context) string {
	cfg := b.cfg
	if cfg.vxlandBin != "" {
		if _, err := os.Stat(cfg.vxlandBin); err != nil {
			return "vxland binary not built (" + err.Error() + ")"
		}
		abs, _ := filepath.Abs(cfg.vxlandBin)
		cfg.vxlandBin = abs
		return ""
	}
	srcs, _ := filepath.Glob(filepath.Join(cfg.repo, "cmd", "vxland", "*.go"))
	if len(srcs) == 0 {
		return "vxland binary not built (./cmd/vxland has no Go files yet)"
	}
	cfg.vxlandBin = filepath.Join(cfg.bin, "vxland")
	progress("building ./cmd/vxland")
	if err := b.goBuild(ctx, cfg.vxlandBin, "./cmd/vxland"); err != nil {
		return "vxland binary not built: " + err.Error()
	}
	return ""
}

// prepareBaseline checks the --baseline-bin binary; it returns why VB
// cannot run, or "".
func (b *bench) prepareBaseline(ctx context.Context) string {
	cfg := b.cfg
	abs, err := filepath.Abs(cfg.baselineBin)
	if err != nil {
		return "baseline binary: " + err.Error()
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "baseline binary missing (" + err.Error() + ")"
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return "baseline binary " + abs + " is not an executable file"
	}
	cfg.baselineBin = abs
	// Both old and current vxland print their build with --version.
	if out, err := b.r.run(ctx, abs, "--version"); err == nil {
		b.baselineVersion = firstLine(out)
	}
	return ""
}

// goBuild runs `go build -o out pkg` in the repository.
func (b *bench) goBuild(ctx context.Context, out, pkg string) error {
	cmd := command(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = b.cfg.repo
	o, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, lastLines(string(o), 2))
	}
	return nil
}

// ensure makes sure binary is on PATH, installing Debian package pkg with
// apt-get when --install is on.
func (b *bench) ensure(ctx context.Context, binary, pkg string) error {
	if _, err := exec.LookPath(binary); err == nil {
		return nil
	}
	if !b.cfg.install {
		return fmt.Errorf("%s not found (package %s; --install=false)", binary, pkg)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("%s not found and no apt-get to install %s", binary, pkg)
	}
	progress("installing %s (apt-get)", pkg)
	install := func() error {
		cmd := command(ctx, "apt-get", "install", "-y", "--no-install-recommends", pkg)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		o, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get install %s: %v: %s", pkg, err, lastLines(string(o), 2))
		}
		return nil
	}
	if err := install(); err != nil {
		progress("apt-get install failed; running apt-get update and retrying")
		upd := command(ctx, "apt-get", "update")
		if o, uerr := upd.CombinedOutput(); uerr != nil {
			return fmt.Errorf("%v; apt-get update: %v: %s", err, uerr, lastLines(string(o), 2))
		}
		if err := install(); err != nil {
			return err
		}
	}
	if _, err := exec.LookPath(binary); err != nil {
		return fmt.Errorf("installed %s but %s is still not on PATH", pkg, binary)
	}
	return nil
}

// staleNamespaces reports (and with --clean-stale deletes) namespaces left by
// earlier vxbench processes that no longer run.
func (b *bench) staleNamespaces(ctx context.Context) {
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		var pid int
		var side string
		if n, _ := fmt.Sscanf(e.Name(), "vxb-%d-%s", &pid, &side); n != 2 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // that run is still alive
		}
		if !b.cfg.cleanStale {
			progress("note: stale namespace %s from an earlier run (use --clean-stale to remove)", e.Name())
			continue
		}
		progress("removing stale namespace %s", e.Name())
		killNamespacePids(ctx, b.r, e.Name())
		_, _ = b.r.run(ctx, "ip", "netns", "del", e.Name())
	}
}

// findRepo walks up from the working folder to the folder holding go.mod.
func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working folder; use --repo")
		}
		dir = parent
	}
}

// progress prints one progress line.
func progress(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
