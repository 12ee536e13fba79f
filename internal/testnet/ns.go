package testnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// cmdTimeout bounds every foreground command, so that a hung tool fails the test
// with a message instead of hanging it until the go test timeout.
const cmdTimeout = 2 * time.Minute

// RequireRoot skips the test unless it runs as root with iproute2's ip installed,
// which every helper here needs (it fails it instead under RequireInteropEnv; see
// SkipOrFail). NewNS calls it, so tests that build a namespace skip on their own;
// call it first to skip before other setup.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "integration test needs root (network namespaces): run as root, e.g. sudo go test ./...")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		SkipOrFail(t, "integration test needs the ip command: install iproute2 (apt-get install iproute2)")
	}
	if err := claimOwner(); err != nil {
		t.Fatal(err)
	}
}

// requireTool skips (or, under RequireInteropEnv, fails) the test when an
// external program is missing.
func requireTool(t testing.TB, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		SkipOrFail(t, "integration test needs %s: install %s (apt-get install %s)", name, pkg, pkg)
	}
}

// NS is a network namespace created for one test and deleted at its end.
type NS struct {
	// Name is the namespace's name for `ip netns`, "vxt-<pid>-<n>".
	Name string
}

// String returns the namespace's name.
func (n *NS) String() string { return n.Name }

// NewNS creates a fresh network namespace with lo up and registers its deletion
// (after killing anything still running in it) with t.Cleanup. It skips the test
// when not root or when ip is missing.
func NewNS(t testing.TB) *NS {
	t.Helper()
	RequireRoot(t)
	name := nextNSName()
	out, err := runCmd(nil, "ip", "netns", "add", name)
	if err != nil && strings.Contains(out, "File exists") {
		// Left by an earlier process that had our PID; we hold the PID's lock, so
		// no live process owns it.
		t.Logf("testnet: removing stale namespace %s", name)
		if derr := deleteNS(name, true); derr != nil {
			t.Fatalf("testnet: remove stale namespace: %v", derr)
		}
		out, err = runCmd(nil, "ip", "netns", "add", name)
	}
	if err != nil {
		forget(name)
		t.Fatalf("testnet: create namespace %s: %v\n%s", name, err, out)
	}
	n := &NS{Name: name}
	t.Cleanup(func() {
		defer forget(name)
		if err := deleteNS(name, true); err != nil {
			t.Errorf("testnet: cleanup: %v", err)
		}
	})
	n.Exec(t, "ip", "link", "set", "lo", "up")
	return n
}

// deleteNS kills whatever still runs in the namespace (when kill is set) and
// deletes it. A missing namespace is not an error.
func deleteNS(name string, kill bool) error {
	if _, err := os.Stat(netnsDir + "/" + name); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if kill {
		out, err := runCmd(nil, "ip", "netns", "pids", name)
		if err == nil {
			for _, f := range strings.Fields(out) {
				pid, perr := strconv.Atoi(f)
				if perr != nil || pid == os.Getpid() {
					continue
				}
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	out, err := runCmd(nil, "ip", "netns", "delete", name)
	if err != nil {
		if _, serr := os.Stat(netnsDir + "/" + name); errors.Is(serr, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete namespace %s: %w: %s", name, err, strings.TrimSpace(out))
	}
	return nil
}

// runCmd runs a command to completion (bounded by cmdTimeout) and returns its
// combined output; stdout, when not nil, receives stdout alone.
func runCmd(stdout *string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	// Stdout and stderr are copied by separate goroutines: the writers lock.
	var out, combined syncBuffer
	cmd.Stdout = &multiWriter{&out, &combined}
	cmd.Stderr = &combined
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("did not finish within %v: %w", cmdTimeout, err)
	}
	if stdout != nil {
		*stdout = out.String()
	}
	return combined.String(), err
}

// multiWriter writes to both buffers.
type multiWriter struct{ a, b *syncBuffer }

func (w *multiWriter) Write(p []byte) (int, error) {
	w.a.Write(p)
	return w.b.Write(p)
}

// nsArgs prefixes a command so that it runs inside the namespace. ip and bridge
// get -n, which needs no mount namespace; anything else runs under `ip netns exec`.
func (n *NS) nsArgs(args []string) []string {
	if len(args) > 0 && (args[0] == "ip" || args[0] == "bridge") {
		return append([]string{args[0], "-n", n.Name}, args[1:]...)
	}
	return append([]string{"ip", "netns", "exec", n.Name}, args...)
}

// Try runs a command inside the namespace and returns its stdout. The error, when
// the command fails, includes its combined output.
func (n *NS) Try(args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("testnet: Try: no command")
	}
	var stdout string
	combined, err := runCmd(&stdout, n.nsArgs(args)...)
	if err != nil {
		return stdout, fmt.Errorf("testnet: in %s: %s: %w\n%s", n.Name,
			strings.Join(args, " "), err, strings.TrimRight(combined, "\n"))
	}
	return stdout, nil
}

// Exec runs a command inside the namespace and returns its stdout; it fails the
// test with the command's output when the command fails.
func (n *NS) Exec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Try(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TryDo runs fn on a goroutine locked to an OS thread that has switched into the
// namespace, and returns fn's error (a panic in fn is returned as an error). Sockets
// fn opens belong to the namespace and can be used from any goroutine afterwards.
// fn must do its namespace-sensitive work on its own goroutine: goroutines it
// starts run in the root namespace.
//
// Afterwards the thread is switched back to its original namespace before it is
// unlocked and returned to the scheduler; if that fails, the goroutine exits still
// locked and the runtime discards the thread. Either way the namespace never leaks
// into other goroutines. (Restoring, rather than always discarding, matters for the
// main thread, which the runtime parks forever instead of ending: parked inside the
// namespace it would keep the namespace alive and change what /proc/self/net shows.)
func (n *NS) TryDo(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("testnet: open this thread's namespace: %w", err)
			return
		}
		defer origin.Close()
		target, err := netns.GetFromName(n.Name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("testnet: open namespace %s: %w", n.Name, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			// Still in the original namespace? Then the thread is fine to reuse.
			if cur, gerr := netns.Get(); gerr == nil {
				if cur.Equal(origin) {
					runtime.UnlockOSThread()
				}
				cur.Close()
			}
			errc <- fmt.Errorf("testnet: enter namespace %s: %w", n.Name, err)
			return
		}
		defer func() {
			if netns.Set(origin) == nil {
				runtime.UnlockOSThread()
			}
			// Otherwise: return while locked, so the runtime discards this thread.
		}()
		errc <- callFn(fn)
	}()
	return <-errc
}

// callFn calls fn, turning a panic into an error.
func callFn(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("testnet: panic inside namespace: %v\n%s", r, debug.Stack())
		}
	}()
	return fn()
}

// Do runs fn inside the namespace like TryDo and returns fn's error; it fails the
// test if the thread cannot enter the namespace.
func (n *NS) Do(t testing.TB, fn func() error) error {
	t.Helper()
	entered := false
	err := n.TryDo(func() error {
		entered = true
		return fn()
	})
	if !entered {
		t.Fatal(err)
	}
	return err
}

// Addr assigns cidr (e.g. "192.0.2.1/24" or "2001:db8::1/64") to ifname and sets
// the interface up. IPv6 addresses are added with nodad so they are usable at once.
// The address must pass CheckAddr.
func (n *NS) Addr(t testing.TB, ifname, cidr string) {
	t.Helper()
	if !strings.Contains(cidr, "/") {
		t.Fatalf("testnet: Addr %q: need a prefix length, e.g. 192.0.2.1/24", cidr)
	}
	RequireDocAddr(t, cidr)
	args := []string{"ip", "addr", "add", cidr, "dev", ifname}
	if strings.Contains(cidr, ":") {
		args = append(args, "nodad")
	}
	n.Exec(t, args...)
	n.Exec(t, "ip", "link", "set", ifname, "up")
}

// Route adds a route to prefix dst via gateway inside the namespace; both must pass
// CheckAddr (a default route is refused).
func (n *NS) Route(t testing.TB, dst, gateway string) {
	t.Helper()
	if !strings.Contains(dst, "/") {
		t.Fatalf("testnet: Route %q: need a prefix, e.g. 198.51.100.0/24", dst)
	}
	RequireDocAddr(t, dst, gateway)
	n.Exec(t, "ip", "route", "add", dst, "via", gateway)
}

// sysctlPath turns "net.ipv4.ip_forward" or "net/ipv4/ip_forward" into its /proc
// path. Use the slash form when a component (an interface name) contains a dot.
func sysctlPath(key string) string {
	if !strings.Contains(key, "/") {
		key = strings.ReplaceAll(key, ".", "/")
	}
	return "/proc/sys/" + strings.TrimPrefix(key, "/")
}

// Sysctl reads a sysctl as seen inside the namespace, e.g.
// n.Sysctl(t, "net.ipv4.ip_forward"), trimmed of surrounding space.
func (n *NS) Sysctl(t testing.TB, key string) string {
	t.Helper()
	var val []byte
	if err := n.Do(t, func() (err error) {
		val, err = os.ReadFile(sysctlPath(key))
		return err
	}); err != nil {
		t.Fatalf("testnet: read sysctl %s in %s: %v", key, n.Name, err)
	}
	return strings.TrimSpace(string(val))
}

// SetSysctl writes a sysctl inside the namespace (only the namespace's own net.*
// settings: writes to global sysctls would affect the whole machine).
func (n *NS) SetSysctl(t testing.TB, key, value string) {
	t.Helper()
	if !strings.HasPrefix(strings.TrimPrefix(key, "/"), "net") {
		t.Fatalf("testnet: SetSysctl %s: only per-namespace net.* sysctls may be set", key)
	}
	if err := n.Do(t, func() error {
		return os.WriteFile(sysctlPath(key), []byte(value), 0o644)
	}); err != nil {
		t.Fatalf("testnet: set sysctl %s=%s in %s: %v", key, value, n.Name, err)
	}
}
