package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vxland/vxland/control"
)

// reload asks the daemon that serves cmd.dev (or listens on cmd.socket) to
// reload its configuration; without either, every daemon with a socket in
// the run directory, each once (a daemon serving several VNIs has several
// sockets, told apart by the daemon's process id).
func reload(cmd *command, stdout io.Writer) error {
	if cmd.dev != "" || cmd.socket != "" {
		c, err := connect(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		sum, err := c.Reload()
		if err != nil {
			return err
		}
		return writeSummary(stdout, "", sum)
	}
	targets, err := daemonSockets(cmd.dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range targets {
		prefix := ""
		if len(targets) > 1 {
			prefix = "socket " + p + ": "
		}
		c, err := control.Dial(p)
		if err == nil {
			var sum string
			if sum, err = c.Reload(); err == nil {
				err = writeSummary(stdout, prefix, sum)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s%w", prefix, err))
		}
	}
	return errors.Join(errs...)
}

// daemonSockets returns one socket in dir per live daemon (a daemon
// serving several VNIs has several sockets, told apart by the daemon's
// process id).
func daemonSockets(dir string) ([]string, error) {
	socks, err := control.FindSocketsIn(dir)
	if err != nil {
		return nil, err
	}
	seen := map[int32]bool{}
	var targets []string
	for _, p := range socks {
		pid, err := peerPID(p)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				continue // stale socket of a dead daemon
			}
			return nil, fmt.Errorf("socket %s: %w", p, err)
		}
		if !seen[pid] {
			seen[pid] = true
			targets = append(targets, p)
		}
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("no vxland daemon found in %s (is the daemon running? VXLAND_RUNDIR selects another directory)", dir)
	}
	return targets, nil
}

// writeSummary prints a reload's summary, each line after prefix.
func writeSummary(w io.Writer, prefix, sum string) error {
	if sum == "" {
		sum = "reloaded: no change"
	}
	for _, line := range strings.Split(sum, "\n") {
		if _, err := fmt.Fprintf(w, "%s%s\n", prefix, line); err != nil {
			return err
		}
	}
	return nil
}

// peerPID returns the process id of the daemon listening on the unix socket
// path (SO_PEERCRED: the credentials it had when it called listen).
func peerPID(path string) (int32, error) {
	c, err := net.Dial("unix", path)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	rc, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("SO_PEERCRED: %w", serr)
	}
	return cred.Pid, nil
}
