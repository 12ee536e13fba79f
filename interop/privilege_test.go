package interop

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vxland/vxland/internal/testnet"
)

// nobodyUID is the user the daemon runs as in TestLeastPrivilege.
const nobodyUID = 65534

// capNetAdmin is CAP_NET_ADMIN's bit in /proc/PID/status's Cap* masks.
const capNetAdmin = 1 << 12

// TestLeastPrivilege runs vxland as the user nobody with CAP_NET_ADMIN
// as its only capability (setpriv clears every other one, in the bounding
// set too) and checks that it forwards to a kernel vxlan peer and answers
// vxlanctl. /dev/net/tun is world-accessible on Debian (mode 0666); where
// a machine has it 0600, the test gives the daemon a 0666 node of the same
// device in a private mount namespace, touching nothing outside.
func TestLeastPrivilege(t *testing.T) {
	testnet.RequireRoot(t)
	for _, tool := range []string{"setpriv", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			testnet.SkipOrFail(t, "%s (util-linux) not installed", tool)
		}
	}
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	underlay(t, a, b, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	testnet.KernelVXLAN(t, b, testnet.VXLANOpts{VNI: 40, Remote: "192.0.2.1", Local: "192.0.2.2", Dev: "ul0", Addr: "203.0.113.2/24"})

	// A directory nobody can read the binary from, a TUN node it may open,
	// and a run directory it may write.
	dir, err := os.MkdirTemp("", "vxland-priv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "vxland")
	data, err := os.ReadFile(vxlandBin)
	if err == nil {
		err = os.WriteFile(bin, data, 0o755)
	}
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	tun := filepath.Join(dir, "tun")
	if err == nil {
		err = syscall.Mknod(tun, syscall.S_IFCHR|0o666, 10<<8|200) // /dev/net/tun is 10:200
	}
	if err == nil {
		err = os.Chmod(tun, 0o666)
	}
	rundir := filepath.Join(dir, "run")
	if err == nil {
		err = os.Mkdir(rundir, 0o755)
	}
	if err == nil {
		err = os.Chown(rundir, nobodyUID, nobodyUID)
	}
	if err != nil {
		t.Fatal(err)
	}

	script := fmt.Sprintf("mount --bind %s /dev/net/tun && exec setpriv --reuid=%d --regid=%d --clear-groups "+
		"--inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin --bounding-set=-all,+net_admin "+
		"env VXLAND_RUNDIR=%s %s --vni 40 --remote 192.0.2.2 --tap vxp0 --addr 203.0.113.1/24 --up",
		tun, nobodyUID, nobodyUID, rundir, bin)
	d := &daemon{ns: a, tap: "vxp0", taps: map[string]*testnet.NS{"vxp0": a}, rundir: rundir}
	d.proc = a.Start(t, "unshare", "-m", "sh", "-c", script)
	testnet.Eventually(t, 10*time.Second, func() error {
		if d.proc.Exited() {
			return testnet.Permanent(fmt.Errorf("vxland as nobody exited:\n%s", d.proc.Output()))
		}
		_, err := d.ctlTry("stats", "dev", "vxp0")
		return err
	})

	// The process that serves is vxland itself (unshare, sh, setpriv and env
	// exec it), as nobody, with CAP_NET_ADMIN only.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.proc.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	if !strings.HasPrefix(fields["Name"], "vxland") {
		t.Fatalf("pid %d is %q, not vxland", d.proc.Pid(), fields["Name"])
	}
	if uids := strings.Fields(fields["Uid"]); len(uids) == 0 || uids[1] != fmt.Sprint(nobodyUID) {
		t.Errorf("vxland runs with uids %q, want %d", fields["Uid"], nobodyUID)
	}
	for _, k := range []string{"CapEff", "CapBnd"} {
		if fields[k] != fmt.Sprintf("%016x", capNetAdmin) {
			t.Errorf("%s = %s, want CAP_NET_ADMIN only (%016x)", k, fields[k], capNetAdmin)
		}
	}

	a.Ping(t, "203.0.113.2", 2)
	b.Ping(t, "203.0.113.1", 2)
	if st := d.stats(t); st["tx_frames"] == 0 || st["rx_frames"] == 0 {
		t.Errorf("no frames counted: %v", st)
	}
	if err := d.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.proc.Wait(5 * time.Second); err != nil {
		t.Fatalf("vxland after SIGTERM: %v\n%s", err, d.proc.Output())
	}
	if entries, _ := os.ReadDir(rundir); len(entries) > 0 {
		t.Errorf("left in the run directory: %v", entries)
	}
}
