package control

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
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
// device dev: RunDir()/dev.sock, e.g. /run/vxland/vxl0.sock. It does not
// check dev; see CheckDevName.
func SocketPath(dev string) string {
	return filepath.Join(RunDir(), dev+socketSuffix)
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

// FindSockets lists the socket files in RunDir(), sorted by name. A missing
// run directory yields an empty list and no error.
func FindSockets() ([]string, error) {
	dir := RunDir()
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
