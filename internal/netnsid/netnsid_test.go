package netnsid

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// statOf stats path or fails the test.
func statOf(t *testing.T, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// inNewNetns runs fn on a thread that has left for a fresh network
// namespace; the thread is discarded afterwards. It skips without the
// privilege to unshare.
func inNewNetns(t *testing.T, fn func()) {
	t.Helper()
	done := make(chan struct{})
	skip := make(chan error, 1)
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			skip <- err
			return
		}
		fn()
	}()
	<-done
	select {
	case err := <-skip:
		t.Skipf("cannot create a network namespace (needs CAP_SYS_ADMIN): %v", err)
	default:
	}
}

func TestSelfMatchesProc(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	id, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	st := statOf(t, "/proc/thread-self/ns/net")
	if id.Ino != st.Ino || id.Dev != st.Dev {
		t.Errorf("Self() = %+v, /proc/thread-self/ns/net is inode %d dev %d", id, st.Ino, st.Dev)
	}
	again, err := Resolve("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if again != id {
		t.Errorf("Resolve(/proc/thread-self/ns/net) = %+v, Self() = %+v", again, id)
	}
}

func TestNameOfPicksFirstMatch(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a-plain-file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"zz", "mid", "other"} {
		target := "/proc/self/ns/net"
		if n == "other" {
			target = "/proc/self/ns/uts" // another namespace: must not match
		}
		if err := os.Symlink(target, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	st := statOf(t, "/proc/self/ns/net")
	if got := nameOf(st, dir); got != "mid" {
		t.Errorf("nameOf = %q, want the first matching name %q", got, "mid")
	}
	if got := nameOf(st, filepath.Join(dir, "absent")); got != "" {
		t.Errorf("nameOf in a missing directory = %q, want none", got)
	}
	uts := statOf(t, "/proc/self/ns/ipc")
	if got := nameOf(uts, dir); got != "" {
		t.Errorf("nameOf an unnamed namespace = %q, want none", got)
	}
}

func TestResolveErrors(t *testing.T) {
	if _, err := Resolve("vxland-test-no-such-ns"); err == nil ||
		!strings.Contains(err.Error(), "network namespace vxland-test-no-such-ns: /run/netns/vxland-test-no-such-ns does not exist") {
		t.Errorf("Resolve(missing name) = %v", err)
	}
	plain := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(plain, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(plain); err == nil || !strings.Contains(err.Error(), plain+" is not a network namespace") {
		t.Errorf("Resolve(plain file) = %v", err)
	}
	if _, err := Resolve("/proc/self/ns/uts"); err == nil || !strings.Contains(err.Error(), "is not a network namespace") {
		// nsfs, but a UTS namespace: statfs alone cannot tell; the
		// namespace type check below must.
		t.Errorf("Resolve(uts namespace) = %v", err)
	}
	if _, err := Resolve(""); err == nil {
		t.Error("Resolve(\"\") succeeded")
	}
}

func TestPath(t *testing.T) {
	for spec, want := range map[string]string{
		"blue":              "/run/netns/blue",
		"/proc/7/ns/net":    "/proc/7/ns/net",
		"./rel/ns":          "./rel/ns",
		"name.with.dots-_1": "/run/netns/name.with.dots-_1",
	} {
		if got := Path(spec); got != want {
			t.Errorf("Path(%q) = %q, want %q", spec, got, want)
		}
	}
}

func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		id        ID
		key, text string
	}{
		{ID{Host: true, Ino: 5}, "", "host"},
		{ID{Name: "h1", Ino: 5}, "name:h1", "h1"},
		{ID{Ino: 4026532281}, "inode:4026532281", "inode 4026532281"},
	} {
		if got := tc.id.Key(); got != tc.key {
			t.Errorf("%+v.Key() = %q, want %q", tc.id, got, tc.key)
		}
		if got := tc.id.String(); got != tc.text {
			t.Errorf("%+v.String() = %q, want %q", tc.id, got, tc.text)
		}
	}
}

// TestOfInOtherNamespace identifies a fresh namespace: named when a file
// in the names directory refers to it, by inode otherwise; the host's when
// PID 1's reference is it, and taken for the host's when unnamed and PID
// 1's namespace cannot be examined.
func TestOfInOtherNamespace(t *testing.T) {
	inNewNetns(t, func() {
		st := statOf(t, selfPath)
		if st.Ino == initInode {
			t.Errorf("a new namespace has the initial namespace's inode %d", st.Ino)
			return
		}
		names := t.TempDir()
		pid1 := filepath.Join(t.TempDir(), "pid1")
		// PID 1 is elsewhere: a reference to the parent's UTS namespace
		// stands in for a namespace that is not ours.
		if err := os.Symlink("/proc/1/ns/uts", pid1); err != nil {
			t.Error(err)
			return
		}
		comparable := canCompare(pid1)

		id, err := of(selfPath, "", names, pid1)
		switch {
		case err != nil:
			t.Error(err)
		case comparable && (id.Host || id.Key() != "inode:"+itoa(st.Ino)):
			t.Errorf("unnamed namespace: %+v key %q, want inode:%d", id, id.Key(), st.Ino)
		case !comparable && !id.Host:
			t.Errorf("unnamed namespace with PID 1 out of reach: %+v, want it taken for the host's", id)
		}

		if err := os.Symlink(selfPath, filepath.Join(names, "h1")); err != nil {
			t.Error(err)
			return
		}
		if id, err := of(selfPath, "", names, pid1); err != nil || id.Key() != "name:h1" {
			t.Errorf("named namespace: %+v, %v; want key name:h1", id, err)
		}

		self := filepath.Join(t.TempDir(), "pid1-here")
		if err := os.Symlink(selfPath, self); err != nil {
			t.Error(err)
			return
		}
		if id, err := of(selfPath, "", names, self); err != nil || !id.Host || id.Key() != "" {
			t.Errorf("PID 1's namespace: %+v, %v; want the host's", id, err)
		}
	})
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
