package testnet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// killGrace is how long a background process gets after SIGTERM before SIGKILL.
const killGrace = 3 * time.Second

// maxProcOutput bounds the output kept per background process; beyond it the
// oldest half is dropped.
const maxProcOutput = 8 << 20

// Proc is a background process running inside a namespace. It is stopped at the
// end of the test (SIGTERM to its process group, SIGKILL after 3 s).
type Proc struct {
	// Args is the command as given to Start.
	Args []string

	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error // exit status, valid after done is closed
}

// syncBuffer is an io.Writer that can be read while the process writes to it.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	limit   int // 0: unbounded
	dropped int
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.limit > 0 && b.buf.Len() > b.limit {
		drop := b.buf.Len() - b.limit/2
		b.buf.Next(drop)
		b.dropped += drop
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped > 0 {
		return fmt.Sprintf("[... %d bytes dropped ...]\n%s", b.dropped, b.buf.String())
	}
	return b.buf.String()
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// Start runs a command in the background inside the namespace (under
// `ip netns exec`, which execs the command, so the process is the command itself).
// Its stdout and stderr are captured together and readable with Output. The
// process is stopped at cleanup; if the test failed, the tail of its output is
// logged then.
func (n *NS) Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	out := &syncBuffer{limit: maxProcOutput}
	p, err := n.startProc(args, out, out)
	if err != nil {
		t.Fatal(err)
	}
	p.out = out
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			o := p.Output()
			if len(o) > 4096 {
				o = "..." + o[len(o)-4096:]
			}
			t.Logf("testnet: output of %q in %s:\n%s", strings.Join(args, " "), n.Name, o)
		}
	})
	return p
}

// startProc starts args in the namespace with the given writers.
func (n *NS) startProc(args []string, stdout, stderr io.Writer) (*Proc, error) {
	if len(args) == 0 {
		return nil, errors.New("testnet: Start: no command")
	}
	full := append([]string{"ip", "netns", "exec", n.Name}, args...)
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	// Own process group, so Stop reaches children too; SIGKILL if the test binary
	// dies before its cleanups run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// A grandchild holding the output pipes open must not block Wait forever.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testnet: start %q in %s: %w", strings.Join(args, " "), n.Name, err)
	}
	p := &Proc{Args: args, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Output returns everything the process has written to stdout and stderr so far.
func (p *Proc) Output() string {
	if p.out == nil {
		return ""
	}
	return p.out.String()
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ErrWaitTimeout is returned by Proc.Wait when the process is still running.
var ErrWaitTimeout = errors.New("testnet: process still running")

// Wait waits up to timeout for the process to end and returns its exit error (nil
// for status 0). It returns an error wrapping ErrWaitTimeout if the process is still
// running then; the process is left running.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("testnet: %q: %w", strings.Join(p.Args, " "), p.err)
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%w after %v: %q", ErrWaitTimeout, timeout, strings.Join(p.Args, " "))
	}
}

// WaitOutput waits up to timeout until the process's output contains substr,
// e.g. a daemon's "ready" line. It fails the test if the process exits first or
// the text never appears.
func (p *Proc) WaitOutput(t testing.TB, substr string, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, func() error {
		if strings.Contains(p.Output(), substr) {
			return nil
		}
		if p.Exited() {
			return Permanent(fmt.Errorf("%q exited (%v) without printing %q; output:\n%s",
				strings.Join(p.Args, " "), p.err, substr, p.Output()))
		}
		return fmt.Errorf("%q has not printed %q yet; output so far:\n%s",
			strings.Join(p.Args, " "), substr, p.Output())
	})
}

// Signal sends sig to the process's group.
func (p *Proc) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("testnet: signal %v to %q: %w", sig, strings.Join(p.Args, " "), err)
	}
	return nil
}

// Stop ends the process: SIGTERM to its process group, SIGKILL if it is still
// running 3 s later. It waits for the process to be reaped and is safe to call
// more than once.
func (p *Proc) Stop() {
	if p.Exited() {
		return
	}
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(killGrace):
		_ = p.Signal(syscall.SIGKILL)
		<-p.done
	}
}
