package main

import (
	"errors"
	"io"

	"github.com/vxland/vxland/control"
)

// clusterShow prints the cluster status of the daemon that serves cmd.dev
// (or listens on cmd.socket), or of every daemon in the run directory.
func clusterShow(cmd *command, stdout io.Writer) error {
	sts, err := askDaemons(cmd, (*control.Client).ClusterShow)
	return errors.Join(writeStatuses(cmd, stdout, sts, control.WriteClusterJSON, control.FormatCluster), err)
}

// bgpShow prints the BGP EVPN status of the daemon that serves cmd.dev
// (or listens on cmd.socket), or of every daemon in the run directory.
func bgpShow(cmd *command, stdout io.Writer) error {
	sts, err := askDaemons(cmd, (*control.Client).BGPShow)
	return errors.Join(writeStatuses(cmd, stdout, sts, control.WriteBGPJSON, control.FormatBGP), err)
}

// askDaemons asks the daemon cmd names (by dev or socket), or every daemon
// in the run directory when it names none, and returns the answers with
// the errors of those that failed.
func askDaemons[T any](cmd *command, ask func(*control.Client) (T, error)) ([]T, error) {
	var targets []string // one socket per daemon; none: the one cmd names
	if cmd.socket == "" && cmd.dev == "" {
		var err error
		if targets, err = daemonSockets(cmd.dir); err != nil {
			return nil, err
		}
	}
	var out []T
	var errs []error
	for i := 0; i < max(1, len(targets)); i++ {
		var c *control.Client
		var err error
		if targets == nil {
			c, err = connect(cmd)
		} else {
			c, err = control.Dial(targets[i])
		}
		if err == nil {
			var st T
			if st, err = ask(c); err == nil {
				out = append(out, st)
			}
			c.Close()
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// writeStatuses prints statuses as one JSON array (-j) or one block each.
func writeStatuses[T any](cmd *command, w io.Writer, sts []T, asJSON func(io.Writer, []T) error, format func(io.Writer, T) error) error {
	if cmd.json {
		return asJSON(w, sts)
	}
	for _, st := range sts {
		if err := format(w, st); err != nil {
			return err
		}
	}
	return nil
}
