// Package soak holds vxland's soak and fault test: `make soak` (SOAK=10m by
// default) runs vxland against a kernel vxlan peer and against a second
// vxland, all at once, under verified TCP transfers, hostile datagrams,
// forwarding-table churn, learning floods, a crowd of misbehaving control
// clients and injected faults, then prints a summary table of its checks.
// The test is built only with the "soak" build tag, so `go test ./...`
// does not run it; docs/soak.md describes it.
package soak
