package control

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/vxland/vxland/internal/netnsid"
)

// DefaultRunDir is the directory that holds the daemons' sockets unless the
// environment variable VXLAND_RUNDIR names another.
const DefaultRunDir = "/run/vxland"

// RunDirEnv is the environment variable that overrides DefaultRunDir.
const RunDirEnv = "VXLAND_RUNDIR"

// socketSuffix ends every socket file name in the run directory.
const socketSuffix = ".sock"

// maxDevNameLen is IFNAMSIZ-1, the longest Linux interface name.
const maxDevNameLen = 15

// RunDir returns the directory holding the daemons' sockets: $VXLAND_RUNDIR
// when set and not empty, DefaultRunDir otherwise.
func RunDir() string {
	if d := os.Getenv(RunDirEnv); d != "" {
		return d
	}
	return DefaultRunDir
}

// SocketPath returns the default socket path of the daemon serving the TAP
// device dev from the calling thread's network namespace: SocketDir()/dev.sock,
// e.g. /run/vxland/vxl0.sock in the host's namespace and
// /run/vxland/netns/blue/vxl0.sock in the namespace named blue. It does
// not check dev; see CheckDevName.
func SocketPath(dev string) string {
	return filepath.Join(SocketDir(), dev+socketSuffix)
}

// Subdirectories of the run directory for daemons outside the host's
// network namespace: one per namespace, by name or by inode number.
const (
	namedSubdir = "netns"
	inodeSubdir = "netns-inode"
	// maxNameInPath is the longest namespace name used in a socket path;
	// longer ones (ip netns allows 255 bytes) leave no room for the TAP
	// name in the 107 bytes of a unix socket path, and go by inode.
	maxNameInPath = 48
)

// SocketDirOf returns the directory under base that holds the sockets of
// daemons in the network namespace id: base itself for the host's
// namespace, base/netns/NAME for a namespace named under /run/netns (names
// longer than 48 bytes excepted), base/netns-inode/INODE for any other.
// The rule depends only on the namespace's identity, so a client computes
// the same directory from inside the namespace or from outside it.
func SocketDirOf(base string, id netnsid.ID) string {
	switch {
	case id.Host:
		return base
	case id.Name != "" && len(id.Name) <= maxNameInPath:
		return filepath.Join(base, namedSubdir, id.Name)
	}
	return filepath.Join(base, inodeSubdir, strconv.FormatUint(id.Ino, 10))
}

// SocketDir returns the directory holding the sockets of the daemons in
// the calling thread's network namespace: SocketDirOf(RunDir(), that
// namespace). Daemons with the same TAP name in different namespaces so
// get different sockets. When the namespace cannot be identified (no
// /proc), it is RunDir().
func SocketDir() string {
	id, err := netnsid.Self()
	if err != nil {
		return RunDir()
	}
	return SocketDirOf(RunDir(), id)
}

// NetnsSocketDir returns the directory holding the sockets of the daemons
// in the network namespace netns, a name under /run/netns or a path such
// as /proc/PID/ns/net: SocketDirOf(RunDir(), that namespace). It fails
// when netns does not exist or is not a network namespace.
func NetnsSocketDir(netns string) (string, error) {
	id, err := netnsid.Resolve(netns)
	if err != nil {
		return "", err
	}
	return SocketDirOf(RunDir(), id), nil
}

// CheckDevName reports whether name is acceptable as a Linux interface name,
// which also makes it safe as a socket file name: 1 to 15 bytes, no '/', no
// whitespace or control characters, no ':' and not "." or "..".
func CheckDevName(name string) error {
	switch {
	case name == "":
		return errors.New("empty device name")
	case len(name) > maxDevNameLen:
		return fmt.Errorf("device name %q too long (%d bytes, at most %d)", name, len(name), maxDevNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("invalid device name %q", name)
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c == '/' || c == ':' || c >= 0x7f {
			return fmt.Errorf("invalid device name %q: character %q not allowed", name, c)
		}
	}
	return nil
}

// FindSockets lists the socket files in SocketDir(), sorted by name. A
// missing directory yields an empty list and no error.
func FindSockets() ([]string, error) {
	return FindSocketsIn(SocketDir())
}

// FindSocketsIn lists the socket files in dir, sorted by name. A missing
// directory yields an empty list and no error.
func FindSocketsIn(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list sockets: %w", err)
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, socketSuffix) || strings.HasPrefix(name, ".") || e.Type()&fs.ModeSocket == 0 {
			continue
		}
		out = append(out, filepath.Join(dir, name))
	}
	sort.Strings(out)
	return out, nil
}

// devFromPath guesses the device a socket path belongs to from its file
// name ("/run/vxland/vxl0.sock" -> "vxl0"), for error messages.
func devFromPath(path string) string {
	base := filepath.Base(path)
	if dev, ok := strings.CutSuffix(base, socketSuffix); ok && CheckDevName(dev) == nil {
		return dev
	}
	return ""
}

// makeDirs creates dir and its missing parents (mode 0755) and returns the
// directories it created, deepest first, for removeDirs.
func makeDirs(dir string) ([]string, error) {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	var created []string
	for i := len(missing) - 1; i >= 0; i-- {
		err := os.Mkdir(missing[i], 0o755)
		switch {
		case err == nil:
			created = append([]string{missing[i]}, created...)
		case errors.Is(err, fs.ErrExist): // made meanwhile by someone else
		default:
			removeDirs(created)
			return nil, err
		}
	}
	return created, nil
}

// removeDirs removes the directories makeDirs created, deepest first,
// while they are empty: another daemon's socket keeps its directory.
func removeDirs(dirs []string) {
	for _, d := range dirs {
		if os.Remove(d) != nil {
			return
		}
	}
}

// cleanupDirs returns the directories a server removes on Close when they
// are empty, deepest first: those Listen created, and the per-namespace
// directories below the run directory that hold dir, which another server
// of the same namespace may have created (whoever closes last removes
// them).
func cleanupDirs(dir string, created []string) []string {
	out := append([]string(nil), created...)
	base := filepath.Clean(RunDir())
	for d := filepath.Clean(dir); strings.HasPrefix(d, base+string(filepath.Separator)); d = filepath.Dir(d) {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}
