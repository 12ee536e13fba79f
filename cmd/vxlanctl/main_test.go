package main

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vxland/vxland/control"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/internal/testnet"
	"github.com/vxland/vxland/stats"
)

// testbed is a run directory with daemons: vxl0 alone on vxl0.sock, vxl1
// and vxl2 sharing vxl1.sock.
type testbed struct {
	dir    string
	tables map[string]*fdb.Table
}

func newTestbed(t *testing.T) *testbed {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "run")
	t.Setenv(control.RunDirEnv, dir)
	tb := &testbed{dir: dir, tables: map[string]*fdb.Table{}}
	dev := func(name string, vni uint32, port uint16) *control.Device {
		tab := fdb.New(fdb.Options{})
		tb.tables[name] = tab
		var set stats.Set
		set.New("rx_packets").Add(uint64(vni))
		set.New("tx_packets").Add(3)
		return &control.Device{Name: name, VNI: vni, Port: port, FDB: tab, Stats: set.Snapshot}
	}
	serve := func(devs ...*control.Device) {
		s, err := control.Listen("", devs...)
		if err != nil {
			t.Fatalf("Listen: %v", err)
		}
		s.Logger = slog.New(slog.DiscardHandler)
		done := make(chan error, 1)
		go func() { done <- s.Serve() }()
		t.Cleanup(func() {
			s.Close()
			<-done
		})
	}
	serve(dev("vxl0", 42, 4789))
	serve(dev("vxl1", 100, 8472), dev("vxl2", 200, 8472))
	return tb
}

// runCLI runs the CLI in-process.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestRun(t *testing.T) {
	tb := newTestbed(t)
	steps := []struct {
		args           string
		code           int
		stdout, stderr string
	}{
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.2", 0, "", ""},
		{"fdb append 00:00:00:00:00:00 dev vxl0 dst 192.0.2.2", 0, "", ""},
		{"fdb append 00:00:00:00:00:00 dev vxl0 dst 192.0.2.3 port 4790", 0, "", ""},
		{"fdb append 00-00-00-00-00-00 dev vxl0 dst 2001:db8::3 vni 43 static", 0, "", ""},
		{"fdb add 02:00:5e:10:00:02 dev vxl0 dst 192.0.2.4 dynamic", 0, "", ""},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.9", 1, "",
			"vxlanctl: fdb add 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.9: entry exists\n"},
		{"fdb show dev vxl0", 0,
			"00:00:00:00:00:00 dst 192.0.2.2 self static\n" +
				"00:00:00:00:00:00 dst 192.0.2.3 port 4790 self static\n" +
				"00:00:00:00:00:00 dst 2001:db8::3 vni 43 self static\n" +
				"02:00:5e:10:00:01 dst 192.0.2.2 self permanent\n" +
				"02:00:5e:10:00:02 dst 192.0.2.4 self\n", ""},
		// vxl2 shares vxl1's socket; its defaults are its own.
		{"fdb replace 02:00:5e:10:00:05 dev vxl2 dst 198.51.100.5 vni 200", 0, "", ""},
		{"fdb del 00:00:00:00:00:00 dev vxl0 dst 192.0.2.3", 1, "",
			"vxlanctl: fdb del 00:00:00:00:00:00 dev vxl0 dst 192.0.2.3: entry not found\n"},
		{"fdb del 00:00:00:00:00:00 dev vxl0 dst 192.0.2.3 port 4790", 0, "", ""},
		{"fdb del 02:00:5e:10:00:02 dev vxl0", 0, "", ""},
		{"fdb show", 0,
			"00:00:00:00:00:00 dev vxl0 dst 192.0.2.2 self static\n" +
				"00:00:00:00:00:00 dev vxl0 dst 2001:db8::3 vni 43 self static\n" +
				"02:00:5e:10:00:01 dev vxl0 dst 192.0.2.2 self permanent\n" +
				"02:00:5e:10:00:05 dev vxl2 dst 198.51.100.5 self permanent\n", ""},
		{"--socket " + filepath.Join(tb.dir, "vxl1.sock") + " fdb show", 0,
			"02:00:5e:10:00:05 dev vxl2 dst 198.51.100.5 self permanent\n", ""},
		{"stats dev vxl2", 0, "dev vxl2 vni 200 port 8472\n    rx_packets 200\n    tx_packets 3\n", ""},
		{"devs", 0, "dev vxl0 vni 42 port 4789\ndev vxl1 vni 100 port 8472\ndev vxl2 vni 200 port 8472\n", ""},
		{"devs dev vxl2", 0, "dev vxl2 vni 200 port 8472\n", ""},
		{"-j devs", 0, `[{"ifname":"vxl0","vni":42,"port":4789},{"ifname":"vxl1","vni":100,"port":8472},{"ifname":"vxl2","vni":200,"port":8472}]` + "\n", ""},
		{"devs dev vxl1 -j", 0, `[{"ifname":"vxl1","vni":100,"port":8472}]` + "\n", ""},
		{"-j --socket " + filepath.Join(tb.dir, "vxl1.sock") + " devs", 0,
			`[{"ifname":"vxl1","vni":100,"port":8472},{"ifname":"vxl2","vni":200,"port":8472}]` + "\n", ""},
		{"--socket " + filepath.Join(tb.dir, "vxl0.sock") + " devs dev vxl2", 1, "",
			`vxlanctl: no device "vxl2" on this socket` + "\n"},
		{"devs dev vxl9", 1, "",
			"vxlanctl: no vxland serving dev vxl9 (socket " + filepath.Join(tb.dir, "vxl9.sock") + "): is the daemon running?\n"},
		{"fdb show dev vxl9", 1, "",
			"vxlanctl: no vxland serving dev vxl9 (socket " + filepath.Join(tb.dir, "vxl9.sock") + "): is the daemon running?\n"},
		{"--socket " + filepath.Join(tb.dir, "vxl0.sock") + " fdb show dev vxl2", 1, "",
			`vxlanctl: no device "vxl2" on this socket (it serves vxl0)` + "\n"},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dts 192.0.2.2", 2, "",
			"vxlanctl: fdb add: unknown keyword \"dts\"\nTry 'vxlanctl --help'.\n"},
	}
	for _, s := range steps {
		code, stdout, stderr := runCLI(strings.Fields(s.args)...)
		if code != s.code || stdout != s.stdout || stderr != s.stderr {
			t.Errorf("vxlanctl %s\n got code %d stdout %q stderr %q\nwant code %d stdout %q stderr %q",
				s.args, code, stdout, stderr, s.code, s.stdout, s.stderr)
		}
	}
	if got := tb.tables["vxl2"].Lookup(fdb.MAC{0x02, 0x00, 0x5e, 0x10, 0x00, 0x05}); len(got) != 1 || got[0].Port != 8472 || got[0].VNI != 200 {
		t.Errorf("vxl2 entry = %v, want port 8472 vni 200 from the device", got)
	}

	code, stdout, _ := runCLI("stats")
	if code != 0 || strings.Count(stdout, "dev vxl") != 3 {
		t.Errorf("stats of every daemon: code %d\n%s", code, stdout)
	}
}

func TestShowSkipsStaleSockets(t *testing.T) {
	tb := newTestbed(t)
	stale := filepath.Join(tb.dir, "dead.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	code, _, stderr := runCLI("fdb", "show")
	if code != 0 || stderr != "vxlanctl: skipping stale socket "+stale+" (no daemon behind it)\n" {
		t.Errorf("show with a stale socket: code %d stderr %q", code, stderr)
	}
}

func TestNoDaemons(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "empty")
	t.Setenv(control.RunDirEnv, dir)
	code, _, stderr := runCLI("fdb", "show")
	if code != 1 || !strings.Contains(stderr, "no vxland daemon found: no sockets in "+dir) {
		t.Errorf("show without daemons: code %d stderr %q", code, stderr)
	}
	code, _, stderr = runCLI("fdb", "add", "02:00:5e:10:00:01", "dev", "vxl0", "dst", "192.0.2.2")
	want := "vxlanctl: no vxland serving dev vxl0 (socket " + filepath.Join(dir, "vxl0.sock") + "): is the daemon running?\n"
	if code != 1 || stderr != want {
		t.Errorf("add without daemons: code %d stderr %q, want %q", code, stderr, want)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"fdb", "help"}} {
		code, stdout, stderr := runCLI(args...)
		if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "Usage: vxlanctl") || !strings.Contains(stdout, "Examples:") {
			t.Errorf("vxlanctl %v: code %d stderr %q stdout %.40q", args, code, stderr, stdout)
		}
	}
}

// TestBinary builds vxlanctl and runs it against test daemons.
func TestBinary(t *testing.T) {
	if testing.Short() {
		// CI never runs -short (see .ci/run), so this skip cannot hide the test there.
		t.Skip("builds vxlanctl; skipped in -short mode")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goTool); err != nil {
			testnet.SkipOrFail(t, "no go tool to build vxlanctl with")
		}
	}
	bin := filepath.Join(t.TempDir(), "vxlanctl")
	build := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tb := newTestbed(t)

	steps := []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"fdb", "append", "00:00:00:00:00:00", "dev", "vxl0", "dst", "192.0.2.2"}, 0, "", ""},
		{[]string{"fdb", "append", "00:00:00:00:00:00", "dev", "vxl0", "dst", "192.0.2.3"}, 0, "", ""},
		{[]string{"fdb", "append", "00:00:00:00:00:00", "dev", "vxl0", "dst", "192.0.2.4", "port", "4790", "vni", "7"}, 0, "", ""},
		{[]string{"fdb", "add", "02:00:5e:10:00:01", "dev", "vxl0", "dst", "198.51.100.1", "static", "self"}, 0, "", ""},
		{[]string{"fdb", "show"}, 0,
			"00:00:00:00:00:00 dev vxl0 dst 192.0.2.2 self permanent\n" +
				"00:00:00:00:00:00 dev vxl0 dst 192.0.2.3 self permanent\n" +
				"00:00:00:00:00:00 dev vxl0 dst 192.0.2.4 port 4790 vni 7 self permanent\n" +
				"02:00:5e:10:00:01 dev vxl0 dst 198.51.100.1 self static\n", ""},
		{[]string{"fdb", "add", "02:00:5e:10:00:01", "dev", "vxl0", "dst", "198.51.100.2"}, 1, "",
			"vxlanctl: fdb add 02:00:5e:10:00:01 dev vxl0 dst 198.51.100.2: entry exists\n"},
		{[]string{"fdb", "add", "02:00:5e:10:00:01", "dev", "vxl0", "dst", "198.51.100.2", "vni", "16777216"}, 2, "",
			"vxlanctl: fdb add: invalid vni \"16777216\" (want 0-16777215)\nTry 'vxlanctl --help'.\n"},
		{[]string{"fdb", "del", "02:00:5e:10:00:01", "dev", "vxl0"}, 0, "", ""},
		{[]string{"fdb", "show", "dev", "vxl0"}, 0,
			"00:00:00:00:00:00 dst 192.0.2.2 self permanent\n" +
				"00:00:00:00:00:00 dst 192.0.2.3 self permanent\n" +
				"00:00:00:00:00:00 dst 192.0.2.4 port 4790 vni 7 self permanent\n", ""},
		{[]string{"stats", "dev", "vxl0"}, 0, "dev vxl0 vni 42 port 4789\n    rx_packets 42\n    tx_packets 3\n", ""},
		{[]string{"stats", "dev", "nope"}, 1, "",
			"vxlanctl: no vxland serving dev nope (socket " + filepath.Join(tb.dir, "nope.sock") + "): is the daemon running?\n"},
		{[]string{"bogus"}, 2, "", "vxlanctl: unknown command \"bogus\" (want fdb, neigh, monitor, stats, devs, reload, cluster or bgp)\nTry 'vxlanctl --help'.\n"},
	}
	for _, s := range steps {
		cmd := exec.Command(bin, s.args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("run vxlanctl %v: %v", s.args, err)
		}
		if code != s.code || stdout.String() != s.stdout || stderr.String() != s.stderr {
			t.Errorf("vxlanctl %s\n got code %d stdout %q stderr %q\nwant code %d stdout %q stderr %q",
				strings.Join(s.args, " "), code, stdout.String(), stderr.String(), s.code, s.stdout, s.stderr)
		}
	}
	out, err := exec.Command(bin, "--help").Output()
	if err != nil || !bytes.Contains(out, []byte("vxlanctl fdb add 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.2")) {
		t.Errorf("vxlanctl --help: %v\n%s", err, out)
	}
}

// TestReload: reload reaches the daemon's hook once, even though its
// devices are on two sockets, and prints the summary; a refusal exits 1
// with every line of the daemon's error.
func TestReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	t.Setenv(control.RunDirEnv, dir)
	calls := 0
	var refuse error
	for _, name := range []string{"vxl0", "vxl1"} {
		s, err := control.Listen("", &control.Device{Name: name, VNI: 1, Port: 4789, FDB: fdb.New(fdb.Options{})})
		if err != nil {
			t.Fatal(err)
		}
		s.Logger = slog.New(slog.DiscardHandler)
		s.Reload = func() (string, error) {
			calls++
			return "vni 2 added", refuse
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve() }()
		t.Cleanup(func() {
			s.Close()
			<-done
		})
	}
	code, out, errOut := runCLI("reload")
	if code != 0 || out != "vni 2 added\n" || calls != 1 {
		t.Fatalf("reload: code %d, stdout %q, stderr %q, hook called %d times; want 0, the summary, once", code, out, errOut, calls)
	}
	code, out, _ = runCLI("reload", "dev", "vxl1")
	if code != 0 || out != "vni 2 added\n" || calls != 2 {
		t.Fatalf("reload dev vxl1: code %d, stdout %q, hook called %d times", code, out, calls)
	}
	refuse = errors.New("a.toml: vni 40 (entry 1): remote and group exclude each other\na.toml: defaults: ttl 0: must be 1-255")
	code, out, errOut = runCLI("reload", "dev", "vxl0")
	if code != 1 || out != "" || !strings.Contains(errOut, "exclude each other\na.toml: defaults: ttl 0") {
		t.Fatalf("refused reload: code %d, stdout %q, stderr %q; want 1 and both problems", code, out, errOut)
	}
}
