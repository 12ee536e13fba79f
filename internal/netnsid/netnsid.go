// Package netnsid tells network namespaces apart by a name that is stable
// where the system allows it: the host's namespace, a name under /run/netns
// (as `ip netns identify` finds it), or else the namespace's inode number.
// vxland uses it to scope its control sockets and to derive its default MAC
// addresses per namespace.
package netnsid

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir holds the named network namespaces (ip-netns(8)).
const Dir = "/run/netns"

// initInode is the inode of the initial network namespace on kernels that
// number it statically (PROC_NET_INIT_INO, Linux 6.18 and later). Older
// kernels number every namespace from 0xF0000000 up, so no other
// namespace can have it.
const initInode = 0xEFFFFFF9

// The files naming the calling thread's namespace and PID 1's.
const (
	selfPath = "/proc/thread-self/ns/net"
	pid1Path = "/proc/1/ns/net"
)

// ID identifies a network namespace.
type ID struct {
	// Host is set for the host's namespace: the initial one, or the one
	// PID 1 is in.
	Host bool
	// Name is the first name, in lexical order, under Dir that refers to
	// the namespace; "" when it has none (or is the host's).
	Name string
	// Ino and Dev are the namespace file's inode and device numbers.
	Ino, Dev uint64
}

// Key is a short text that tells namespaces apart: "" for the host's,
// "name:NAME" for a named one, "inode:N" otherwise. Names survive a
// reboot; inode numbers do not.
func (id ID) Key() string {
	switch {
	case id.Host:
		return ""
	case id.Name != "":
		return "name:" + id.Name
	}
	return "inode:" + strconv.FormatUint(id.Ino, 10)
}

// String describes the namespace for messages: "host", the name, or
// "inode N".
func (id ID) String() string {
	switch {
	case id.Host:
		return "host"
	case id.Name != "":
		return id.Name
	}
	return "inode " + strconv.FormatUint(id.Ino, 10)
}

// Self identifies the network namespace of the calling thread, which for
// a goroutine not locked to its thread is the process's own.
func Self() (ID, error) {
	return of(selfPath, "", Dir, pid1Path)
}

// Resolve identifies the namespace spec names: a name under Dir, as
// `ip netns add` creates them and `ip -n` takes them, or a path such as
// /proc/PID/ns/net. The error says when it does not exist or is not a
// network namespace.
func Resolve(spec string) (ID, error) {
	if spec == "" {
		return ID{}, errors.New("empty network namespace name")
	}
	return of(Path(spec), spec, Dir, pid1Path)
}

// Path returns the file of the namespace spec: Dir/spec for a name, spec
// itself when it contains a '/'.
func Path(spec string) string {
	if strings.ContainsRune(spec, '/') {
		return spec
	}
	return filepath.Join(Dir, spec)
}

// of identifies the namespace at path; spec is what the user gave, for
// messages ("" for the process's own), dir the named namespaces and pid1
// the host's reference.
func of(path, spec, dir, pid1 string) (ID, error) {
	what := "network namespace " + spec
	if spec == "" {
		what = "own network namespace"
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return ID{}, fmt.Errorf("%s: %s does not exist", what, path)
		}
		return ID{}, fmt.Errorf("%s: %w", what, &fs.PathError{Op: "stat", Path: path, Err: err})
	}
	if !isNetns(path) {
		return ID{}, fmt.Errorf("%s: %s is not a network namespace", what, path)
	}
	id := ID{Ino: st.Ino, Dev: st.Dev}
	if isHost(st, pid1) {
		id.Host = true
		return id, nil
	}
	id.Name = nameOf(st, dir)
	if id.Name == "" && !canCompare(pid1) {
		// Unnamed, and PID 1's namespace is out of reach (no permission
		// to look at PID 1, as a user without CAP_SYS_PTRACE): take it
		// for the host's, where daemons normally run.
		id.Host = true
	}
	return id, nil
}

// nsGetNstype is NS_GET_NSTYPE (linux/nsfs.h): the ioctl that returns a
// namespace file's CLONE_NEW* type.
const nsGetNstype = 0xb703

// isNetns reports whether path is a namespace file (nsfs) of a network
// namespace. When the file cannot be opened to ask its type (a
// /proc/PID/ns/net of another user's process), nsfs is taken as enough.
func isNetns(path string) bool {
	var sfs unix.Statfs_t
	if unix.Statfs(path, &sfs) != nil || sfs.Type != unix.NSFS_MAGIC {
		return false
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return true
	}
	defer unix.Close(fd)
	typ, err := unix.IoctlRetInt(fd, nsGetNstype)
	return err != nil || typ == unix.CLONE_NEWNET // ENOTTY: a kernel before 4.11
}

// isHost reports whether st is the initial namespace or PID 1's.
func isHost(st unix.Stat_t, pid1 string) bool {
	if st.Ino == initInode {
		return true
	}
	var p unix.Stat_t
	if unix.Stat(pid1, &p) != nil {
		return false
	}
	return p.Ino == st.Ino && p.Dev == st.Dev
}

// canCompare reports whether PID 1's namespace file can be examined.
func canCompare(pid1 string) bool {
	var p unix.Stat_t
	return unix.Stat(pid1, &p) == nil
}

// nameOf returns the first name in dir (sorted) whose file is the
// namespace st, as `ip netns identify` matches them; "" when none is.
func nameOf(st unix.Stat_t, dir string) string {
	ents, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return ""
	}
	for _, e := range ents {
		var s unix.Stat_t
		if unix.Stat(filepath.Join(dir, e.Name()), &s) == nil && s.Ino == st.Ino && s.Dev == st.Dev {
			return e.Name()
		}
	}
	return ""
}
