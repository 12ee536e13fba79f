package control

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vx0.sock")
	calls := 0
	var next error
	startServer(t, path, func(s *Server) {
		s.Reload = func() (string, error) {
			calls++
			if next != nil {
				return "", next
			}
			return "vni 41 added\nvni 40 changed: remote", nil
		}
	}, testDevice("vx0", newFake()))
	c := dial(t, path)

	sum, err := c.Reload()
	if err != nil || sum != "vni 41 added\nvni 40 changed: remote" || calls != 1 {
		t.Fatalf("Reload = %q, %v after %d calls; want the hook's summary", sum, err, calls)
	}

	next = errors.New("a.toml: vni 40 (entry 1): remote and group exclude each other\na.toml: version: missing")
	_, err = c.Reload()
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != CodeRefused || ce.Message != next.Error() {
		t.Fatalf("refused Reload = %#v, want code %s and every line of the hook's error", err, CodeRefused)
	}

	next = &ReloadError{Partial: true, Err: errors.New("vni 42: tap vx42: device is busy")}
	if _, err = c.Reload(); !errors.As(err, &ce) || ce.Code != CodePartial {
		t.Fatalf("partial Reload = %#v, want code %s", err, CodePartial)
	}

	rep := roundTrip(t, path, []byte(`{"v":1,"op":"reload","dev":"vx0"}`+"\n"))
	if rep.OK || rep.Code != CodeInvalid || calls != 3 {
		t.Errorf("reload with dev = %+v (hook called %d times), want invalid without calling the hook", rep, calls)
	}
}

func TestReloadWithoutHook(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vx0.sock")
	startServer(t, path, nil, testDevice("vx0", newFake()))
	_, err := dial(t, path).Reload()
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != CodeInvalid || !strings.Contains(ce.Message, "does not reload") {
		t.Fatalf("Reload without hook = %v, want an invalid-request error", err)
	}
}

// A reload that removes the very socket it came in on: the handler
// detaches its own server, the reply still arrives, the socket file goes.
func TestReloadDetachesOwnServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vx0.sock")
	startServer(t, path, func(s *Server) {
		s.Reload = func() (string, error) {
			if err := s.Detach(); err != nil {
				return "", err
			}
			return "vni 42 removed", nil
		}
	}, testDevice("vx0", newFake()))
	sum, err := dial(t, path).Reload()
	if err != nil || sum != "vni 42 removed" {
		t.Fatalf("Reload = %q, %v; want the summary although the server detached", sum, err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after Detach: %v, want it removed", err)
	}
	if _, err := Dial(path); err == nil {
		t.Error("Dial after Detach succeeded")
	}
}
