package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// sample is one raw measurement of one metric of one system in one round.
type sample struct {
	System string             `json:"system"`
	Round  int                `json:"round"`
	Metric string             `json:"metric"`
	Value  float64            `json:"value"`
	Unit   string             `json:"unit"`
	OK     bool               `json:"ok"`
	Error  string             `json:"error,omitempty"`
	Detail map[string]float64 `json:"detail,omitempty"`
	Time   time.Time          `json:"time"`
}

// runRounds measures every system once per round, in the configured order,
// each in fresh namespaces. The veth row is measured once, in round 1.
func (b *bench) runRounds(ctx context.Context) error {
	cfg := b.cfg
	for round := 1; round <= cfg.rounds; round++ {
		list := cfg.systems
		if round == 1 && cfg.veth {
			veth, _ := findSystem("veth")
			list = append([]system{veth}, list...)
		}
		for _, sys := range list {
			if ctx.Err() != nil {
				return errInterrupted
			}
			if _, skip := b.skipped[sys.Name]; skip {
				continue
			}
			b.runSystem(ctx, sys, round)
		}
	}
	if ctx.Err() != nil {
		return errInterrupted
	}
	return nil
}

// runSystem sets sys up, runs the selected tests and tears it down.
func (b *bench) runSystem(ctx context.Context, sys system, round int) {
	cfg := b.cfg
	tag := fmt.Sprintf("[round %d/%d] %-4s", round, cfg.rounds, sys.Name)
	progress("%s set up: %s", tag, sys.Desc)
	t0 := time.Now()
	tb, err := newTestbed(ctx, b.r, cfg, sys, round)
	defer func() {
		tb.teardown()
	}()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		progress("%s SETUP FAILED: %v", tag, err)
		// Every metric of this round counts as failed, with the one error.
		err = fmt.Errorf("setup: %v", err)
		if cfg.tests["ping"] {
			b.add(sys.Name, round, "rtt_p50", 0, "ms", err, nil)
			b.add(sys.Name, round, "rtt_p99", 0, "ms", err, nil)
		}
		for _, t := range iperfTests {
			if cfg.tests[t.Key] {
				b.add(sys.Name, round, t.Key, 0, unitOf(t), err, nil)
			}
		}
		return
	}
	progress("%s ready in %.1f s", tag, time.Since(t0).Seconds())

	var dead string // set once a measured daemon has died
	failures := 0   // consecutive failed iperf tests
	if cfg.tests["ping"] {
		res, err := tb.ping(ctx, cfg.pings, 10*time.Millisecond, time.Second)
		if err == nil && res.Received == 0 {
			err = fmt.Errorf("no replies to %d pings", res.Sent)
		}
		if ctx.Err() != nil {
			return
		}
		detail := map[string]float64{"sent": float64(res.Sent), "received": float64(res.Received)}
		p50, p99 := percentile(res.RTTus, 50)/1e3, percentile(res.RTTus, 99)/1e3
		b.add(sys.Name, round, "rtt_p50", p50, "ms", err, detail)
		b.add(sys.Name, round, "rtt_p99", p99, "ms", err, detail)
		if err != nil {
			progress("%s ping FAILED: %v", tag, err)
		} else {
			progress("%s ping  p50 %.3f ms  p99 %.3f ms  (%d/%d replies)", tag, p50, p99, res.Received, res.Sent)
		}
	}
	for _, t := range iperfTests {
		if !cfg.tests[t.Key] {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if dead != "" {
			b.add(sys.Name, round, t.Key, 0, unitOf(t), fmt.Errorf("not run: daemon died earlier: %s", dead), nil)
			continue
		}
		if failures >= 2 {
			b.add(sys.Name, round, t.Key, 0, unitOf(t), fmt.Errorf("not run: the two tests before it failed"), nil)
			continue
		}
		cpu0, cpuErr := tb.daemonCPU()
		host0 := hostCPUSeconds()
		res, err := tb.iperf(ctx, t, cfg.duration)
		cpu1, cpuErr1 := tb.daemonCPU()
		host1 := hostCPUSeconds()
		if ctx.Err() != nil {
			return
		}
		if d := tb.deadDaemon(); d != "" {
			dead = d
			if err == nil {
				err = fmt.Errorf("daemon died: %s", d)
			}
		}
		detail := map[string]float64{"bytes": res.Bytes, "seconds": res.Seconds, "host_cpu_s": host1 - host0}
		if t.UDPLen == 0 {
			detail["retransmits"] = res.Retransmits
		} else {
			detail["sent_packets"] = res.Sent
			detail["lost_packets"] = res.Lost
		}
		hasCPU := len(tb.daemons) > 0 && cpuErr == nil && cpuErr1 == nil
		if hasCPU {
			detail["daemon_cpu_s"] = cpu1 - cpu0
		}
		b.add(sys.Name, round, t.Key, res.Value, unitOf(t), err, detail)
		if err != nil {
			failures++
			progress("%s %-12s FAILED: %v", tag, t.Key, err)
			continue
		}
		failures = 0
		line := fmt.Sprintf("%s %-12s %s %s", tag, t.Key, fmtNum(displayValue(t.Key, res.Value)), displayUnit(t.Key))
		if hasCPU && t.UDPLen == 0 && res.Bytes > 0 {
			perGB := (cpu1 - cpu0) / (res.Bytes / 1e9)
			b.add(sys.Name, round, "cpu_"+t.Key, perGB, "s/GB", nil, map[string]float64{"daemon_cpu_s": cpu1 - cpu0, "bytes": res.Bytes})
			line += fmt.Sprintf("   %s %.2f CPU s/GB", daemonLabel(sys), perGB)
		}
		progress("%s", line)
	}
	if len(tb.daemons) > 0 && ctx.Err() == nil {
		var peak float64
		detail := map[string]float64{}
		var rssErr error
		for i, p := range tb.daemons {
			v, err := peakRSSMiB(p.pid())
			if err != nil {
				rssErr = fmt.Errorf("%s: %v", p.name, err)
				continue
			}
			detail[fmt.Sprintf("%s_%d_mib", p.name, i)] = v
			peak = max(peak, v)
		}
		b.add(sys.Name, round, "rss_peak", peak, "MiB", rssErr, detail)
		if rssErr == nil {
			progress("%s peak RSS %.1f MiB (%s)", tag, peak, daemonLabel(sys))
		}
	}
}

// add records one sample; a non-nil err marks it failed.
func (b *bench) add(sys string, round int, metric string, v float64, unit string, err error, detail map[string]float64) {
	s := sample{System: sys, Round: round, Metric: metric, Value: v, Unit: unit, OK: err == nil, Detail: detail, Time: time.Now().UTC()}
	if err != nil {
		s.Error = strings.TrimSpace(err.Error())
		s.Value = 0
	}
	b.samples = append(b.samples, s)
}

// unitOf is the raw unit of an iperf test's value.
func unitOf(t iperfTest) string {
	if t.UDPLen > 0 {
		return "packets/s"
	}
	return "Gbit/s"
}

// daemonLabel names the measured userspace processes of sys.
func daemonLabel(sys system) string {
	switch {
	case sys.A == sideOVS:
		return "ovs-vswitchd"
	case sys.A == sideRelay:
		return "relay"
	case sys.A == sideVxland && sys.B == sideVxland:
		return "vxland x2"
	case sys.A == sideVxland:
		return "vxland"
	case sys.A == sideBaseline:
		return "baseline vxland"
	}
	return ""
}
