package main

import (
	"errors"
	"io"

	"github.com/vxland/vxland/control"
)

// bgpShow prints the BGP EVPN status of the daemon that serves cmd.dev
// (or listens on cmd.socket), or of every daemon in the run directory.
func bgpShow(cmd *command, stdout io.Writer) error {
	var targets []string // one socket per daemon; none: the one cmd names
	if cmd.socket == "" && cmd.dev == "" {
		var err error
		if targets, err = daemonSockets(cmd.dir); err != nil {
			return err
		}
	}
	var sts []*control.BGPStatus
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
			var st *control.BGPStatus
			if st, err = c.BGPShow(); err == nil {
				sts = append(sts, st)
			}
			c.Close()
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if cmd.json {
		if err := control.WriteBGPJSON(stdout, sts); err != nil {
			return err
		}
	} else {
		for _, st := range sts {
			if err := control.FormatBGP(stdout, st); err != nil {
				return err
			}
		}
	}
	return errors.Join(errs...)
}
