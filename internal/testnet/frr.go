package testnet

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// frrDir is where FRR's daemons and vtysh look for a pathspace's sockets
// (`-N NAME`: /var/run/frr/NAME).
const frrDir = "/var/run/frr"

// FRR is an FRR instance (Debian's frr: zebra and bgpd) running in a test
// namespace, in a pathspace of its own named after the namespace, with its
// configuration files and sockets in /var/run/frr/NAME. Stop and Start
// restart it on the same configuration, as an outage would.
type FRR struct {
	// Name is the pathspace: `vtysh -N NAME` reaches the instance.
	Name  string
	ns    *NS
	dir   string
	zebra *Proc
	bgpd  *Proc
	t     testing.TB
}

// StartFRR starts zebra and bgpd in ns with bgpd.conf as bgpd's
// configuration, and waits until bgpd answers vtysh. Both are stopped and
// the pathspace removed at cleanup. The test fails (or skips, see
// SkipOrFail) when FRR is not installed.
func StartFRR(t testing.TB, ns *NS, bgpdConf string) *FRR {
	t.Helper()
	for _, bin := range []string{"/usr/lib/frr/zebra", "/usr/lib/frr/bgpd"} {
		if _, err := os.Stat(bin); err != nil {
			SkipOrFail(t, "frr not installed (Debian: apt-get install frr)")
		}
	}
	if _, err := exec.LookPath("vtysh"); err != nil {
		SkipOrFail(t, "vtysh not installed (Debian: apt-get install frr)")
	}
	u, err := user.Lookup("frr")
	if err != nil {
		SkipOrFail(t, "no user frr (Debian's frr package creates it): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	f := &FRR{Name: ns.Name, ns: ns, dir: filepath.Join(frrDir, ns.Name), t: t}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(f.dir) })
	files := map[string]string{"zebra.conf": "hostname " + ns.Name + "\n", "bgpd.conf": bgpdConf, "vtysh.conf": ""}
	for name, text := range files {
		p := filepath.Join(f.dir, name)
		if err := os.WriteFile(p, []byte(text), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(f.dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	f.Start()
	return f
}

// daemon starts one FRR daemon in the foreground, logging to its output.
func (f *FRR) daemon(name string) *Proc {
	return f.ns.Start(f.t, "/usr/lib/frr/"+name, "-N", f.Name,
		"-f", filepath.Join(f.dir, name+".conf"), "-i", filepath.Join(f.dir, name+".pid"),
		"--log", "stdout", "--log-level", "warnings")
}

// Start (re)starts zebra, then bgpd, and waits until bgpd answers.
func (f *FRR) Start() {
	t := f.t
	t.Helper()
	f.zebra = f.daemon("zebra")
	Eventually(t, 20*time.Second, func() error {
		if f.zebra.Exited() {
			return Permanent(fmt.Errorf("zebra exited: %s", f.zebra.Output()))
		}
		_, err := os.Stat(filepath.Join(f.dir, "zserv.api"))
		return err
	})
	f.bgpd = f.daemon("bgpd")
	Eventually(t, 20*time.Second, func() error {
		if f.bgpd.Exited() {
			return Permanent(fmt.Errorf("bgpd exited: %s", f.bgpd.Output()))
		}
		_, err := f.TryVtysh("show bgp summary")
		return err
	})
}

// Stop stops bgpd (which closes its sessions with a notification), then
// zebra (which removes what it programmed).
func (f *FRR) Stop() {
	f.bgpd.Stop()
	f.zebra.Stop()
}

// StopBGP stops bgpd only.
func (f *FRR) StopBGP() { f.bgpd.Stop() }

// TryVtysh runs one vtysh command against the instance.
func (f *FRR) TryVtysh(cmd string) (string, error) {
	out, err := exec.Command("vtysh", "-N", f.Name, "-c", cmd).CombinedOutput()
	// vtysh complains about a missing vtysh.conf of its own; that is noise.
	text := string(out)
	var keep []string
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, "% Can't open configuration file") {
			keep = append(keep, l)
		}
	}
	text = strings.Join(keep, "\n")
	if err != nil {
		return text, fmt.Errorf("vtysh -N %s -c %q: %v: %s", f.Name, cmd, err, text)
	}
	return text, nil
}

// Vtysh runs one vtysh command and fails the test if it fails.
func (f *FRR) Vtysh(t testing.TB, cmd string) string {
	t.Helper()
	out, err := f.TryVtysh(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
