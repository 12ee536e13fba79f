// Package testnet builds real network topologies for integration tests: network
// namespaces, veth pairs between them, kernel vxlan peers, background processes,
// packet captures and TCP transfers, all removed again when the test ends.
//
// Every test host lives in its own network namespace named "vxt-<pid>-<n>"; veth
// pairs are created directly inside the namespaces, so nothing is ever added to the
// root namespace and parallel test binaries (go test ./... and several engineers at
// once) cannot collide. Everything a helper creates is registered with t.Cleanup:
// background processes are stopped first (SIGTERM, then SIGKILL after 3 s), then the
// namespaces are deleted, which removes their interfaces. Sweep removes namespaces
// left behind by test binaries that died (call it from TestMain, or use Main).
//
// Helpers that assign or target an address refuse (t.Fatal) anything outside the
// documentation ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and
// 2001:db8::/32 (plus administratively scoped multicast, 239.0.0.0/8 and non-global
// IPv6 scopes, for vxlan groups inside namespaces); see CheckAddr. Commands run with
// Exec or Start are not inspected: pass only such addresses to them too.
//
// The helpers need root. NewNS (and RequireRoot) skip the test with a clear message
// when the test is not run as root or when iproute2's ip is missing; with
// VXLAND_REQUIRE_INTEROP=1 in the environment they fail it instead (SkipOrFail), so
// that CI cannot pass without running them. Functions taking
// a testing.TB must be called from the test's goroutine, like t.Fatal itself.
//
// Typical use:
//
//	func TestMain(m *testing.M) { testnet.Main(m) }
//
//	func TestOverlay(t *testing.T) {
//		a, b := testnet.NewNS(t), testnet.NewNS(t)
//		testnet.Link(t, a, "eth0", b, "eth0")
//		a.Addr(t, "eth0", "192.0.2.1/24")
//		b.Addr(t, "eth0", "192.0.2.2/24")
//		testnet.KernelVXLAN(t, a, testnet.VXLANOpts{VNI: 40, Local: "192.0.2.1",
//			Remote: "192.0.2.2", Dev: "eth0", Addr: "203.0.113.1/24"})
//		testnet.KernelVXLAN(t, b, testnet.VXLANOpts{VNI: 40, Local: "192.0.2.2",
//			Remote: "192.0.2.1", Dev: "eth0", Addr: "203.0.113.2/24"})
//		a.Ping(t, "203.0.113.2", 3)
//		testnet.TCPTransfer(t, a, b, "203.0.113.2", 8<<20)
//	}
package testnet
