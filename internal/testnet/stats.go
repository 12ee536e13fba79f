package testnet

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// Nstat returns the namespace's SNMP and netstat counters by name, as `nstat -asz`
// prints them (absolute values, zeros included), e.g. "TcpInCsumErrors",
// "UdpInErrors", "Ip6InReceives".
func (n *NS) Nstat(t testing.TB) map[string]uint64 {
	t.Helper()
	out := n.Exec(t, "nstat", "-asz")
	m, err := parseNstat(out)
	if err != nil {
		t.Fatalf("testnet: nstat in %s: %v", n.Name, err)
	}
	return m
}

func parseNstat(out string) (map[string]uint64, error) {
	m := map[string]uint64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %q: %w", line, err)
		}
		m[f[0]] = v
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("no counters in output %q", out)
	}
	return m, nil
}

// Counter returns one nstat counter, failing the test if the kernel has none of
// that name.
func (n *NS) Counter(t testing.TB, name string) uint64 {
	t.Helper()
	m := n.Nstat(t)
	v, ok := m[name]
	if !ok {
		t.Fatalf("testnet: no counter %q in %s (nstat -asz knows %d counters)", name, n.Name, len(m))
	}
	return v
}

// LinkStats are an interface's counters (`ip -s link`, stats64).
type LinkStats struct {
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
	MTU                                     int
	OperState                               string
}

// LinkStats returns ifname's counters inside the namespace.
func (n *NS) LinkStats(t testing.TB, ifname string) LinkStats {
	t.Helper()
	out := n.Exec(t, "ip", "-s", "-j", "link", "show", "dev", ifname)
	s, err := parseLinkStats(out)
	if err != nil {
		t.Fatalf("testnet: link stats of %s in %s: %v", ifname, n.Name, err)
	}
	return s
}

func parseLinkStats(out string) (LinkStats, error) {
	type dir struct {
		Bytes   uint64 `json:"bytes"`
		Packets uint64 `json:"packets"`
		Errors  uint64 `json:"errors"`
		Dropped uint64 `json:"dropped"`
	}
	var links []struct {
		MTU       int    `json:"mtu"`
		OperState string `json:"operstate"`
		Stats     struct {
			Rx dir `json:"rx"`
			Tx dir `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return LinkStats{}, fmt.Errorf("parse ip -j output: %w", err)
	}
	if len(links) != 1 {
		return LinkStats{}, fmt.Errorf("ip -j printed %d links, want 1", len(links))
	}
	l := links[0]
	return LinkStats{
		RxBytes: l.Stats.Rx.Bytes, RxPackets: l.Stats.Rx.Packets,
		RxErrors: l.Stats.Rx.Errors, RxDropped: l.Stats.Rx.Dropped,
		TxBytes: l.Stats.Tx.Bytes, TxPackets: l.Stats.Tx.Packets,
		TxErrors: l.Stats.Tx.Errors, TxDropped: l.Stats.Tx.Dropped,
		MTU: l.MTU, OperState: l.OperState,
	}, nil
}
