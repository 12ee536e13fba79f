package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// metricDef describes one reported quantity.
type metricDef struct {
	Key    string `json:"key"`
	Label  string `json:"label"`
	Unit   string `json:"unit"`   // unit of the raw samples
	Higher bool   `json:"higher"` // higher is better
	Chart  bool   `json:"chart"`  // part of the throughput chart
}

// metrics in report order.
var metrics = []metricDef{
	{"tcp1_fwd", "TCP 1 stream A→B", "Gbit/s", true, true},
	{"tcp1_rev", "TCP 1 stream B→A", "Gbit/s", true, true},
	{"tcp4_fwd", "TCP 4 streams A→B", "Gbit/s", true, true},
	{"tcp4_rev", "TCP 4 streams B→A", "Gbit/s", true, true},
	{"udp64_fwd", "UDP 64 B A→B", "packets/s", true, true},
	{"udp64_rev", "UDP 64 B B→A", "packets/s", true, true},
	{"udp1400_fwd", "UDP 1400 B A→B", "packets/s", true, true},
	{"udp1400_rev", "UDP 1400 B B→A", "packets/s", true, true},
	{"rtt_p50", "RTT p50", "ms", false, false},
	{"rtt_p99", "RTT p99", "ms", false, false},
	{"cpu_tcp1_fwd", "CPU TCP 1 A→B", "s/GB", false, false},
	{"cpu_tcp1_rev", "CPU TCP 1 B→A", "s/GB", false, false},
	{"cpu_tcp4_fwd", "CPU TCP 4 A→B", "s/GB", false, false},
	{"cpu_tcp4_rev", "CPU TCP 4 B→A", "s/GB", false, false},
	{"rss_peak", "peak RSS", "MiB", false, false},
}

// displayValue converts a raw value to the unit shown in tables (pps -> kpps).
func displayValue(key string, v float64) float64 {
	if strings.HasPrefix(key, "udp") {
		return v / 1e3
	}
	return v
}

// displayUnit is the unit shown in tables for key.
func displayUnit(key string) string {
	for _, m := range metrics {
		if m.Key == key {
			if m.Unit == "packets/s" {
				return "kpps"
			}
			return m.Unit
		}
	}
	return ""
}

// summary condenses the samples of one system and metric.
type summary struct {
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	OK      int       `json:"ok"`
	Failed  int       `json:"failed"`
	RatioK  *float64  `json:"ratio_to_K,omitempty"`
	Samples []float64 `json:"samples"`
}

// median returns the median of xs (mean of the middle two for even counts).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// summarize groups samples by system and metric.
func summarize(samples []sample) map[string]map[string]*summary {
	out := map[string]map[string]*summary{}
	for _, s := range samples {
		if out[s.System] == nil {
			out[s.System] = map[string]*summary{}
		}
		sm := out[s.System][s.Metric]
		if sm == nil {
			sm = &summary{}
			out[s.System][s.Metric] = sm
		}
		if !s.OK {
			sm.Failed++
			continue
		}
		sm.OK++
		sm.Samples = append(sm.Samples, s.Value)
	}
	for _, bySys := range out {
		for _, sm := range bySys {
			if sm.OK == 0 {
				continue
			}
			sm.Median = median(sm.Samples)
			sm.Min, sm.Max = slicesMin(sm.Samples), slicesMax(sm.Samples)
		}
	}
	// Ratios to K from the same run.
	if k := out["K"]; k != nil {
		for _, bySys := range out {
			for key, sm := range bySys {
				ref := k[key]
				if sm.OK == 0 || ref == nil || ref.OK == 0 || ref.Median == 0 {
					continue
				}
				r := sm.Median / ref.Median
				sm.RatioK = &r
			}
		}
	}
	return out
}

func slicesMin(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs[1:] {
		m = min(m, x)
	}
	return m
}

func slicesMax(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs[1:] {
		m = max(m, x)
	}
	return m
}

// fmtNum prints v with about three significant digits.
func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// fmtRatio prints a ratio to K.
func fmtRatio(r float64) string {
	switch {
	case r >= 10:
		return fmt.Sprintf("%.1f×", r)
	case r < 0.1:
		return fmt.Sprintf("%.3f×", r)
	}
	return fmt.Sprintf("%.2f×", r)
}

// machineInfo identifies where and from what the numbers came.
type machineInfo struct {
	Date         string  `json:"date"`
	NProc        int     `json:"nproc"`
	Kernel       string  `json:"kernel"`
	CPUModel     string  `json:"cpu_model"`
	GitCommit    string  `json:"git_commit"`
	GitDirty     bool    `json:"git_dirty"`
	GoVersion    string  `json:"go_version"`
	Iperf3       string  `json:"iperf3"`
	OVS          string  `json:"ovs,omitempty"`
	LoadAvgStart string  `json:"loadavg_start"`
	LoadAvgEnd   string  `json:"loadavg_end,omitempty"`
	DurationS    float64 `json:"run_seconds,omitempty"`
}

// collectMachineInfo gathers machineInfo; missing pieces stay empty.
func collectMachineInfo(ctx context.Context, r *runner, cfg *config) machineInfo {
	mi := machineInfo{
		Date:         time.Now().UTC().Format(time.RFC3339),
		NProc:        runtime.NumCPU(),
		GoVersion:    runtime.Version(),
		LoadAvgStart: loadavg(),
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		mi.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				mi.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := r.run(ctx, "git", "-C", cfg.repo, "rev-parse", "HEAD"); err == nil {
		mi.GitCommit = strings.TrimSpace(out)
	} else {
		mi.GitCommit = "unknown (no commit)"
	}
	if out, err := r.run(ctx, "git", "-C", cfg.repo, "status", "--porcelain", "--untracked-files=no"); err == nil {
		mi.GitDirty = strings.TrimSpace(out) != ""
	}
	if out, err := r.run(ctx, "iperf3", "--version"); err == nil {
		mi.Iperf3 = firstLine(out)
	}
	if cfg.ovsSchema != "" {
		if out, err := r.run(ctx, "ovs-vswitchd", "--version"); err == nil {
			mi.OVS = firstLine(out)
		}
	}
	return mi
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// jsonReport is the layout of latest.json.
type jsonReport struct {
	Tool        string                         `json:"tool"`
	Interrupted bool                           `json:"interrupted,omitempty"`
	Machine     machineInfo                    `json:"machine"`
	Config      jsonConfig                     `json:"config"`
	Systems     map[string]string              `json:"systems"`
	Skipped     map[string]string              `json:"skipped,omitempty"`
	Notes       []string                       `json:"notes"`
	Metrics     []metricDef                    `json:"metrics"`
	Summary     map[string]map[string]*summary `json:"summary"`
	// BaselineCPU compares VK's CPU s/GB with VB's, when both ran.
	BaselineCPU *cpuComparison `json:"cpu_vk_vs_vb,omitempty"`
	Samples     []sample       `json:"samples"`
}

type jsonConfig struct {
	Rounds     int      `json:"rounds"`
	DurationS  float64  `json:"duration_s"`
	Order      []string `json:"order"`
	Tests      []string `json:"tests"`
	Pings      int      `json:"pings"`
	PingEveryS float64  `json:"ping_interval_s"`
	VxlandArgs []string `json:"vxland_args,omitempty"`
	// The --baseline-bin vxland (system VB).
	BaselineBin     string   `json:"baseline_bin,omitempty"`
	BaselineName    string   `json:"baseline_name,omitempty"`
	BaselineVersion string   `json:"baseline_version,omitempty"`
	BaselineArgs    []string `json:"baseline_args,omitempty"`
}

// describe is the report's description of a system; VB names its build.
func (b *bench) describe(s system) string {
	if s.Name != baselineSystem {
		return s.Desc
	}
	var what []string
	if b.cfg.baselineName != "" {
		what = append(what, b.cfg.baselineName)
	}
	if b.cfg.baselineBin != "" {
		what = append(what, b.cfg.baselineBin)
	}
	if b.baselineVersion != "" {
		what = append(what, b.baselineVersion)
	}
	if len(b.cfg.baselineArgs) > 0 {
		what = append(what, "args "+strings.Join(b.cfg.baselineArgs, " "))
	}
	if len(what) == 0 {
		return s.Desc
	}
	return s.Desc + " (" + strings.Join(what, "; ") + ")"
}

// cpuComparison is VK's CPU s/GB against VB's: the ratio of the medians per
// TCP test, and the median of those ratios.
type cpuComparison struct {
	Median float64            `json:"median_ratio"`
	PerKey map[string]float64 `json:"ratio"`
	keys   []string           // PerKey's keys in report order
}

// baselineCPU compares the CPU s/GB of VK and VB over the TCP tests both
// measured; nil when there is no such test.
func baselineCPU(sum map[string]map[string]*summary) *cpuComparison {
	c := &cpuComparison{PerKey: map[string]float64{}}
	var ratios []float64
	for _, m := range metrics {
		if !strings.HasPrefix(m.Key, "cpu_tcp") {
			continue
		}
		vk, vb := sum["VK"][m.Key], sum[baselineSystem][m.Key]
		if vk == nil || vb == nil || vk.OK == 0 || vb.OK == 0 || vb.Median <= 0 {
			continue
		}
		r := vk.Median / vb.Median
		c.PerKey[m.Key] = r
		c.keys = append(c.keys, m.Key)
		ratios = append(ratios, r)
	}
	if len(ratios) == 0 {
		return nil
	}
	c.Median = median(ratios)
	return c
}

// pct prints a ratio as a signed change: 0.62 -> "-38%".
func pct(r float64) string {
	return fmt.Sprintf("%+.0f%%", (r-1)*100)
}

// line is the markdown sentence of the comparison.
func (c *cpuComparison) line() string {
	var parts []string
	for _, k := range c.keys {
		parts = append(parts, strings.TrimPrefix(labelOf(k), "CPU ")+" "+pct(c.PerKey[k]))
	}
	return fmt.Sprintf("CPU s/GB VK vs VB: %s (median of the per-test ratios of medians: %s; negative = VK uses less CPU per byte)",
		pct(c.Median), strings.Join(parts, ", "))
}

// labelOf is the label of a metric.
func labelOf(key string) string {
	for _, m := range metrics {
		if m.Key == key {
			return m.Label
		}
	}
	return key
}

// reportRows is the row order of the tables: veth first (context), then the
// systems as configured.
func (b *bench) reportRows() []system {
	var rows []system
	if b.cfg.veth {
		v, _ := findSystem("veth")
		rows = append(rows, v)
	}
	return append(rows, b.cfg.systems...)
}

// notesList returns the caveats that go under the tables and into the JSON.
func (b *bench) notesList(sum map[string]map[string]*summary) []string {
	cfg := b.cfg
	notes := []string{
		fmt.Sprintf("Medians of %d interleaved rounds (each round sets every system up in fresh namespaces, in the order %s); iperf3 tests of %v each. Ratios are to K measured in this same run; do not compare absolute numbers across runs on a shared machine.",
			cfg.rounds, strings.Join(orderNames(cfg.systems), " "), cfg.duration),
	}
	if (b.wants("N") || b.wants("O")) && !cfg.offloadsOff {
		notes = append(notes, "**N and O ran with the kernel peer's offloads at their defaults** (--peer-offloads-off=false): expect their TCP to fail (seeded checksums; see docs/kernel-notes.md).")
	}
	if (b.wants("N") || b.wants("O")) && cfg.offloadsOff {
		notes = append(notes, fmt.Sprintf("**N and O run with the kernel peer's underlay veth offloads OFF** (`ethtool -K %s %s` in B): with offloads on, they forward frames with seeded (never completed) TCP checksums and TCP moves 0 bytes (see docs/kernel-notes.md). This costs the kernel peer throughput. K, VK and VV run at default offloads.", vethB, offloadOff))
	}
	if cfg.veth {
		notes = append(notes, "veth: the underlay alone (192.0.2.1 → 192.0.2.2, MTU 1500, no tunnel), measured once in round 1, for context.")
	}
	notes = append(notes,
		"A = 203.0.113.1 (client side, where vxland/relay/OVS run), B = 203.0.113.2 (iperf3 server, kernel vxlan in K/VK/VT/VB/N/O). A→B = forward, B→A = iperf3 -R.",
		"UDP: iperf3 -u -b 0 -l N; received packets per second at the receiver (sent minus lost).",
		fmt.Sprintf("RTT: %d ICMP echoes 10 ms apart, idle tunnel, measured from A.", cfg.pings),
		"CPU s/GB: utime+stime of the userspace dataplane processes (/proc/PID/stat; both daemons for VV, ovs-vswitchd for O, the relay for N, the older vxland for VB) over the TCP test, per GB (1e9 bytes) of payload received. Peak RSS: VmHWM (largest daemon).",
		"† = samples spread (max-min) over 25% of the median; see latest.json for raw samples.",
	)
	for _, s := range b.reportRows() {
		if why, ok := b.skipped[s.Name]; ok {
			notes = append(notes, fmt.Sprintf("%s skipped: %s", s.Name, why))
		}
	}
	// Distinct failure messages per system.
	for _, s := range b.reportRows() {
		seen := map[string]bool{}
		for _, smp := range b.samples {
			if smp.System != s.Name || smp.OK || seen[smp.Error] {
				continue
			}
			seen[smp.Error] = true
			msg := smp.Error
			if len(msg) > 300 {
				msg = msg[:300] + "…"
			}
			notes = append(notes, fmt.Sprintf("%s failure (round %d, %s): %s", s.Name, smp.Round, smp.Metric, msg))
		}
	}
	return notes
}

func orderNames(ss []system) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name)
	}
	return out
}

// cell formats one table cell: median, ratio to K, markers.
func cell(sm *summary, key string, ratio bool) string {
	if sm == nil {
		return "–"
	}
	if sm.OK == 0 {
		return "fail"
	}
	s := fmtNum(displayValue(key, sm.Median))
	if ratio && sm.RatioK != nil {
		s += " (" + fmtRatio(*sm.RatioK) + ")"
	}
	if sm.OK >= 3 && sm.Median > 0 && (sm.Max-sm.Min)/sm.Median > 0.25 {
		s += " †"
	}
	if sm.Failed > 0 {
		s += fmt.Sprintf(" [%d/%d ok]", sm.OK, sm.OK+sm.Failed)
	}
	return s
}

// renderMarkdown builds latest.md.
func (b *bench) renderMarkdown(sum map[string]map[string]*summary, notes []string, interrupted bool) string {
	var w strings.Builder
	mi := b.info
	fmt.Fprintf(&w, "# vxland system benchmark\n\n")
	if interrupted {
		fmt.Fprintf(&w, "**INTERRUPTED: partial results.**\n\n")
	}
	dirty := ""
	if mi.GitDirty {
		dirty = " (dirty)"
	}
	fmt.Fprintf(&w, "%s · %s · %d CPUs · Linux %s · commit %s%s · %d rounds × %v · load %s → %s\n\n",
		mi.Date, mi.CPUModel, mi.NProc, mi.Kernel, shortCommit(mi.GitCommit), dirty,
		b.cfg.rounds, b.cfg.duration, mi.LoadAvgStart, mi.LoadAvgEnd)

	fmt.Fprintf(&w, "| system | what |\n|---|---|\n")
	for _, s := range b.reportRows() {
		desc := b.describe(s)
		if why, ok := b.skipped[s.Name]; ok {
			desc += " — *skipped: " + why + "*"
		}
		fmt.Fprintf(&w, "| %s | %s |\n", s.Name, strings.ReplaceAll(desc, "|", "\\|"))
	}
	w.WriteString("\n")

	tables := []struct {
		title string
		keys  []string
		ratio bool
	}{
		{"TCP throughput, Gbit/s (ratio to K)", []string{"tcp1_fwd", "tcp1_rev", "tcp4_fwd", "tcp4_rev"}, true},
		{"UDP received, kpps (ratio to K)", []string{"udp64_fwd", "udp64_rev", "udp1400_fwd", "udp1400_rev"}, true},
		{"Latency (ratio to K) and cost of the userspace dataplane", []string{"rtt_p50", "rtt_p99", "cpu_tcp1_fwd", "cpu_tcp1_rev", "cpu_tcp4_fwd", "cpu_tcp4_rev", "rss_peak"}, true},
	}
	for _, t := range tables {
		var keys []string
		for _, k := range t.keys {
			if b.metricSelected(k) {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			continue
		}
		fmt.Fprintf(&w, "### %s\n\n| system |", t.title)
		for _, k := range keys {
			fmt.Fprintf(&w, " %s |", headerOf(k))
		}
		w.WriteString("\n|---|")
		for range keys {
			w.WriteString("---:|")
		}
		w.WriteString("\n")
		for _, s := range b.reportRows() {
			fmt.Fprintf(&w, "| %s |", s.Name)
			for _, k := range keys {
				sm := sum[s.Name][k]
				c := cell(sm, k, t.ratio && !strings.HasPrefix(k, "cpu_") && k != "rss_peak")
				if _, ok := b.skipped[s.Name]; ok && sm == nil {
					c = "skipped"
				}
				fmt.Fprintf(&w, " %s |", c)
			}
			w.WriteString("\n")
		}
		w.WriteString("\n")
	}
	if c := baselineCPU(sum); c != nil {
		fmt.Fprintf(&w, "%s\n\n", c.line())
	}
	w.WriteString("Notes:\n\n")
	for _, n := range notes {
		fmt.Fprintf(&w, "- %s\n", n)
	}
	return w.String()
}

// metricSelected reports whether the tests that produce metric key ran.
func (b *bench) metricSelected(key string) bool {
	switch {
	case strings.HasPrefix(key, "rtt_"):
		return b.cfg.tests["ping"]
	case strings.HasPrefix(key, "cpu_"):
		return b.cfg.tests[strings.TrimPrefix(key, "cpu_")]
	case key == "rss_peak":
		return true
	}
	return b.cfg.tests[key]
}

// headerOf is the column header of a metric.
func headerOf(key string) string {
	for _, m := range metrics {
		if m.Key == key {
			return m.Label + " (" + displayUnit(key) + ")"
		}
	}
	return key
}

func shortCommit(c string) string {
	if len(c) == 40 {
		return c[:12]
	}
	return c
}

// writeResults writes latest.md, latest.json and latest.svg to --out
// (interrupted.* instead when the run was cut short).
func (b *bench) writeResults(interrupted bool) ([]string, error) {
	cfg := b.cfg
	b.info.LoadAvgEnd = loadavg()
	b.info.DurationS = math.Round(time.Since(b.started).Seconds())
	sum := summarize(b.samples)
	notes := b.notesList(sum)
	b.markdown = b.renderMarkdown(sum, notes, interrupted)

	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return nil, err
	}
	rep := jsonReport{
		Tool:        "vxbench",
		Interrupted: interrupted,
		Machine:     b.info,
		Config: jsonConfig{
			Rounds: cfg.rounds, DurationS: cfg.duration.Seconds(), Pings: cfg.pings,
			PingEveryS: 0.01, VxlandArgs: cfg.vxlandArgs,
			BaselineBin: cfg.baselineBin, BaselineName: cfg.baselineName,
			BaselineVersion: b.baselineVersion, BaselineArgs: cfg.baselineArgs,
		},
		BaselineCPU: baselineCPU(sum),
		Systems:     map[string]string{},
		Skipped:     b.skipped,
		Notes:       notes,
		Metrics:     metrics,
		Summary:     sum,
		Samples:     b.samples,
	}
	for _, s := range b.reportRows() {
		rep.Config.Order = append(rep.Config.Order, s.Name)
		rep.Systems[s.Name] = b.describe(s)
	}
	for _, t := range iperfTests {
		if cfg.tests[t.Key] {
			rep.Config.Tests = append(rep.Config.Tests, t.Key)
		}
	}
	if cfg.tests["ping"] {
		rep.Config.Tests = append(rep.Config.Tests, "ping")
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, err
	}
	// An interrupted run must not replace the last complete results.
	base := "latest"
	if interrupted {
		base = "interrupted"
	}
	files := []struct {
		ext  string
		data []byte
	}{
		{".md", []byte(b.markdown)},
		{".json", append(js, '\n')},
		{".svg", []byte(b.renderSVG(sum))},
	}
	var paths []string
	for _, f := range files {
		p := filepath.Join(cfg.out, base+f.ext)
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}
