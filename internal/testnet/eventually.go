package testnet

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// permanentError marks an error that ends Eventually at once.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that Eventually stops polling and fails at once, for a
// condition that can no longer become true (a process that exited, say).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// Eventually polls fn until it returns nil, and fails the test with fn's last
// error if that does not happen within timeout (or at once if fn returns an error
// wrapped with Permanent). It is for readiness waits, not timed assertions: pick a
// timeout far above the expected time. Polling starts at 10 ms and backs off to
// 250 ms between attempts.
func Eventually(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	if err := poll(timeout, fn); err != nil {
		t.Fatal(err)
	}
}

// poll is Eventually without the test: it returns the failure as an error.
func poll(timeout time.Duration, fn func() error) error {
	start := time.Now()
	deadline := start.Add(timeout)
	interval := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return &pollError{attempts: attempt, elapsed: time.Since(start), err: perm.err, gaveUp: true}
		}
		if !time.Now().Add(interval).Before(deadline) {
			return &pollError{attempts: attempt, elapsed: time.Since(start), err: err}
		}
		time.Sleep(interval)
		interval = min(2*interval, 250*time.Millisecond)
	}
}

// pollError describes a condition that was never met.
type pollError struct {
	attempts int
	elapsed  time.Duration
	err      error
	gaveUp   bool
}

func (e *pollError) Error() string {
	how := "still not met"
	if e.gaveUp {
		how = "can no longer be met"
	}
	return fmt.Sprintf("testnet: condition %s after %v (%d attempts): %v",
		how, e.elapsed.Round(time.Millisecond), e.attempts, e.err)
}

func (e *pollError) Unwrap() error { return e.err }
