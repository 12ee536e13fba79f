package testnet

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	// NSPrefix starts the name of every namespace this package creates.
	NSPrefix = "vxt-"
	// netnsDir is where `ip netns` keeps its named namespaces.
	netnsDir = "/run/netns"
	// lockDir holds one lock file per live test process, so that Sweep can tell a
	// dead owner from a live one even across PID namespaces or after PID reuse.
	lockDir = "/run/vxt-testnet"
	// maxIfName is the longest interface name Linux accepts (IFNAMSIZ - 1).
	maxIfName = 15
)

var (
	nsCounter atomic.Uint64
	ifCounter atomic.Uint64

	ownedMu sync.Mutex
	owned   = map[string]bool{} // namespaces this process created (or is creating)

	ownerOnce sync.Once
	ownerErr  error
	ownerLock *os.File // held for the life of the process; never closed

	nsNameRE = regexp.MustCompile(`^` + NSPrefix + `([0-9]+)-([0-9]+)$`)
)

// nextNSName returns a fresh namespace name "vxt-<pid>-<n>" and records it as ours.
func nextNSName() string {
	name := fmt.Sprintf("%s%d-%d", NSPrefix, os.Getpid(), nsCounter.Add(1))
	ownedMu.Lock()
	owned[name] = true
	ownedMu.Unlock()
	return name
}

func forget(name string) {
	ownedMu.Lock()
	delete(owned, name)
	ownedMu.Unlock()
}

func isOwned(name string) bool {
	ownedMu.Lock()
	defer ownedMu.Unlock()
	return owned[name]
}

// UniqueIfName returns an interface name unique within this machine's test runs:
// prefix, this process's PID and a per-process counter, both in base 36, e.g.
// "vx1kz3-7". The prefix is shortened if needed to keep the name within the 15
// characters Linux allows. Interfaces inside a fresh namespace need no unique names;
// use this for anything whose name must not collide across processes.
func UniqueIfName(prefix string) string {
	suffix := strconv.FormatInt(int64(os.Getpid()), 36) + "-" +
		strconv.FormatUint(ifCounter.Add(1), 36)
	if room := maxIfName - len(suffix); len(prefix) > room {
		prefix = prefix[:max(room, 0)]
	}
	return prefix + suffix
}

// checkIfName validates an interface name the way the kernel will.
func checkIfName(name string) error {
	switch {
	case name == "":
		return errors.New("testnet: empty interface name")
	case len(name) > maxIfName:
		return fmt.Errorf("testnet: interface name %q is longer than %d characters", name, maxIfName)
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n"):
		return fmt.Errorf("testnet: invalid interface name %q", name)
	}
	return nil
}

// lockPath is the lock file of the test process with the given PID.
func lockPath(pid int) string { return filepath.Join(lockDir, strconv.Itoa(pid)+".lock") }

// claimOwner takes this process's lock file (once). While the process lives the
// lock is held, so Sweep leaves its namespaces alone; when it dies the kernel drops
// the lock and its leftovers become sweepable.
func claimOwner() error {
	ownerOnce.Do(func() {
		if err := os.MkdirAll(lockDir, 0o755); err != nil {
			ownerErr = fmt.Errorf("testnet: create lock directory: %w", err)
			return
		}
		path := lockPath(os.Getpid())
		deadline := time.Now().Add(5 * time.Second)
		for {
			f, err := lockFile(path)
			if err == nil {
				ownerLock = f
				return
			}
			if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
				ownerErr = fmt.Errorf("testnet: lock %s: %w", path, err)
				return
			}
			// Another process is sweeping a stale lock of the same PID; it lets go soon.
			time.Sleep(50 * time.Millisecond)
		}
	})
	return ownerErr
}

// lockFile opens path (creating it), takes an exclusive non-blocking flock, and
// checks that the locked file is still the one at path (a sweeper may have unlinked
// it in between).
func lockFile(path string) (*os.File, error) {
	for range 10 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			return nil, err
		}
		var held, cur syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &held); err != nil {
			f.Close()
			return nil, err
		}
		if err := syscall.Stat(path, &cur); err == nil && cur.Ino == held.Ino && cur.Dev == held.Dev {
			return f, nil
		}
		f.Close() // unlinked under us: try again with a fresh file
	}
	return nil, fmt.Errorf("lock file %s keeps being replaced", path)
}

// ownerDead reports whether the test process with the given PID is gone. The lock
// file decides when it exists; otherwise the PID must not exist at all.
func ownerDead(pid int) (dead bool, release func()) {
	path := lockPath(pid)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH), func() {}
	}
	f, err := lockFile(path)
	if err != nil {
		return false, nil // held by a live process, or unusable: keep
	}
	return true, func() {
		os.Remove(path)
		f.Close()
	}
}

// Sweep deletes namespaces named "vxt-<pid>-<n>" whose test process is dead (its
// lock file is free, or, without a lock file, its PID no longer exists), after
// killing any processes still running inside them. Namespaces of this process that
// it did not create (left by an earlier process with the same PID) are removed too.
// Namespaces of live processes are never touched. It returns the names removed.
// Sweep needs root and is safe to call from TestMain; it does nothing when not root
// or when ip is missing.
func Sweep() ([]string, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, nil
	}
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("testnet: sweep: %w", err)
	}
	byPID := map[int][]string{}
	for _, e := range entries {
		m := nsNameRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid <= 0 {
			continue
		}
		byPID[pid] = append(byPID[pid], e.Name())
	}
	var removed []string
	var errs []error
	for pid, names := range byPID {
		if pid == os.Getpid() {
			for _, name := range names {
				if isOwned(name) {
					continue
				}
				if err := deleteNS(name, true); err != nil {
					errs = append(errs, err)
					continue
				}
				removed = append(removed, name)
			}
			continue
		}
		dead, release := ownerDead(pid)
		if !dead {
			continue
		}
		for _, name := range names {
			if err := deleteNS(name, true); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, name)
		}
		release()
	}
	sweepLocks()
	return removed, errors.Join(errs...)
}

// sweepLocks removes lock files of dead processes that left no namespaces.
func sweepLocks() {
	entries, err := os.ReadDir(lockDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		pidStr, ok := strings.CutSuffix(e.Name(), ".lock")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid == os.Getpid() {
			continue
		}
		if f, err := lockFile(lockPath(pid)); err == nil {
			os.Remove(lockPath(pid))
			f.Close()
		}
	}
}

// releaseOwner removes this process's lock file; its namespaces must be gone.
func releaseOwner() {
	if ownerLock != nil {
		os.Remove(lockPath(os.Getpid()))
		ownerLock.Close()
		ownerLock = nil
	}
}

// Main is a TestMain body: it sweeps leftovers of dead test processes, runs the
// tests, removes this process's lock file and exits with the tests' status.
//
//	func TestMain(m *testing.M) { testnet.Main(m) }
func Main(m *testing.M) {
	if removed, err := Sweep(); err != nil {
		fmt.Fprintf(os.Stderr, "testnet: sweep of stale namespaces: %v\n", err)
	} else if len(removed) > 0 {
		fmt.Fprintf(os.Stderr, "testnet: removed %d stale namespaces: %s\n",
			len(removed), strings.Join(removed, " "))
	}
	code := m.Run()
	releaseOwner()
	os.Exit(code)
}
