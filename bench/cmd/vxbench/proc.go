package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// runner starts every external command of a benchmark run. Each command gets
// its own process group and dies with vxbench (Pdeathsig), and every
// background process is remembered so that it can be stopped by its id.
type runner struct {
	verbose bool

	mu    sync.Mutex
	procs map[int]*proc // running background processes by pid
}

// proc is a background process started by runner.start.
type proc struct {
	name string // short label for messages
	log  string // file holding its stdout and stderr
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // exit status, valid after done
}

func newRunner(verbose bool) *runner {
	return &runner{verbose: verbose, procs: map[int]*proc{}}
}

// command prepares cmd to run in its own process group, killed as a group
// when ctx ends and when vxbench dies.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 3 * time.Second
	return cmd
}

// run runs a command to completion and returns its standard output. The
// error, if any, carries the command line and its standard error.
func (r *runner) run(ctx context.Context, name string, args ...string) (string, error) {
	if r.verbose {
		fmt.Fprintf(os.Stderr, "  $ %s %s\n", name, strings.Join(args, " "))
	}
	cmd := command(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return stdout.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, lastLines(msg, 3))
	}
	return stdout.String(), nil
}

// ip runs ip(8) with the given arguments.
func (r *runner) ip(ctx context.Context, args ...string) error {
	_, err := r.run(ctx, "ip", args...)
	return err
}

// start launches a background process whose output goes to logPath. It stays
// running until stop, stopAll, or its own exit; ctx is not attached to it.
func (r *runner) start(label, logPath string, env []string, name string, args ...string) (*proc, error) {
	if r.verbose {
		fmt.Fprintf(os.Stderr, "  $ %s %s &\n", name, strings.Join(args, " "))
	}
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := command(context.Background(), name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", label, err)
	}
	p := &proc{name: label, log: logPath, cmd: cmd, done: make(chan struct{})}
	r.mu.Lock()
	r.procs[cmd.Process.Pid] = p
	r.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		r.mu.Lock()
		delete(r.procs, cmd.Process.Pid)
		r.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// pid is the process id. `ip netns exec` execs its command, so for commands
// started through it this is the id of the command itself.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// describe says how the process ended, with the tail of its output (the
// whole log stays in the scratch folder, kept with --keep).
func (p *proc) describe() string {
	b, _ := os.ReadFile(p.log)
	status := "running"
	if p.exited() {
		status = fmt.Sprintf("exited (%v)", p.err)
	}
	out := lastLines(strings.TrimSpace(string(b)), 3)
	if out == "" {
		out = "(no output)"
	}
	return fmt.Sprintf("%s %s: %s", p.name, status, out)
}

// stop ends the process group of p: SIGTERM, then SIGKILL after a grace period.
func (r *runner) stop(p *proc) {
	if p == nil || p.exited() {
		return
	}
	pid := p.pid()
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(2 * time.Second):
		}
	}
}

// stopAll stops every background process that is still running.
func (r *runner) stopAll() {
	r.mu.Lock()
	ps := make([]*proc, 0, len(r.procs))
	for _, p := range r.procs {
		ps = append(ps, p)
	}
	r.mu.Unlock()
	for _, p := range ps {
		r.stop(p)
	}
}

// lastLines returns at most n trailing non-empty lines of s, joined with " / ".
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// errInterrupted reports that the run was cancelled by a signal.
var errInterrupted = errors.New("interrupted")
