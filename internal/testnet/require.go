package testnet

import (
	"fmt"
	"os"
	"testing"
)

// RequireInteropEnv is the environment variable that turns every skip for a
// missing tool, privilege or kernel feature into a failure. CI sets it
// (VXLAND_REQUIRE_INTEROP=1), so that a green run proves the integration tests
// really ran.
const RequireInteropEnv = "VXLAND_REQUIRE_INTEROP"

// InteropRequired reports whether RequireInteropEnv is set to a non-empty value
// other than "0".
func InteropRequired() bool {
	v := os.Getenv(RequireInteropEnv)
	return v != "" && v != "0"
}

// SkipOrFail skips the test with the formatted reason, or fails it with that
// reason when InteropRequired: use it for every skip caused by a missing tool,
// privilege or kernel feature.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InteropRequired() {
		t.Fatalf("%s (%s is set, so this is a failure, not a skip)", msg, RequireInteropEnv)
		return
	}
	t.Skip(msg)
}
