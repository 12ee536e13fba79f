package interop

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vxland/vxland/internal/testnet"
)

// runIn runs a command in ns and returns its combined output and exit
// status (-1 if it could not run).
func runIn(ns *testnet.NS, args ...string) (string, int) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		return string(out) + err.Error(), -1
	}
	return string(out), 0
}

// TestSetupErrors checks that each way vxland can fail to start ends with
// a clear message, exit status 2, no crash, and nothing left behind (see
// expectSetupError).
func TestSetupErrors(t *testing.T) {
	testnet.RequireRoot(t)
	ns := testnet.NewNS(t)
	dir := t.TempDir()
	sock := func(name string) string { return filepath.Join(dir, name+".sock") }
	first := startVxland(t, ns, "vxe1", "--vni", "1")
	ns.Exec(t, "ip", "link", "add", "vxe4", "type", "veth", "peer", "name", "vxe4p")

	for _, tc := range []struct {
		name string
		tap  string
		args []string
		want string
	}{
		{"port in use", "vxe2", []string{"--vni", "2", "--control", sock("e2")}, "udp port 4789 is already in use"},
		// A multiqueue open of an existing TAP would add queues to it: the
		// running daemon's TAP must be refused, not shared.
		{"TAP of another daemon", "vxe1", []string{"--vni", "10", "--dstport", "4795", "--queues", "2", "--control", sock("e10")}, "in use or exists already"},
		{"name taken", "vxe4", []string{"--vni", "4", "--dstport", "4791", "--control", sock("e4")}, "exists and is not a TAP"},
		{"control socket taken", "vxe5", []string{"--vni", "5", "--dstport", "4792", "--control", filepath.Join(first.rundir, "netns", first.ns.Name, "vxe1.sock")}, "another vxland is serving"},
		{"missing dev", "vxe6", []string{"--vni", "6", "--dstport", "4793", "--dev", "nodev0"}, "nodev0: no such device"},
		{"missing netns", "vxe7", []string{"--vni", "7", "--dstport", "4794", "--netns", "vxt-absent"}, "vxt-absent does not exist"},
		{"bad vni", "vxe8", []string{"--vni", "16777216"}, "must be a number from 0 to 16777215"},
		{"bad remote", "vxe9", []string{"--vni", "9", "--remote", "192.0.2"}, `--remote "192.0.2": not an IP address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectSetupError(t, ns, []string{tc.want}, append([]string{"--tap", tc.tap}, tc.args...)...)
			if tc.tap != "vxe4" && tc.tap != "vxe1" {
				if _, err := ns.Try("ip", "link", "show", tc.tap); err == nil {
					t.Errorf("failed start left TAP %s behind", tc.tap)
				}
			}
		})
	}
	t.Run("no permission", func(t *testing.T) {
		if _, err := exec.LookPath("setpriv"); err != nil {
			testnet.SkipOrFail(t, "setpriv (util-linux) not installed")
		}
		out, code := runIn(ns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
			vxlandBin, "--vni", "3", "--tap", "vxe3", "--dstport", "4790", "--control", sock("e3"))
		if code != 2 || !strings.Contains(out, "no permission to open /dev/net/tun") {
			t.Fatalf("unprivileged start: exit %d, output:\n%s", code, out)
		}
	})
	// The running daemon was not disturbed by any of it.
	first.ctl(t, "fdb", "add", "02:00:00:00:00:01", "dev", "vxe1", "dst", "192.0.2.9")
	first.stop(t)
}
