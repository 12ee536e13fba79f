package main

import (
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// svgNode is any element of a parsed SVG.
type svgNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []svgNode  `xml:",any"`
}

func (n *svgNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n *svgNode) num(t *testing.T, name string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(n.attr(name), 64)
	if err != nil {
		t.Fatalf("<%s %s=%q>: %v", n.XMLName.Local, name, n.attr(name), err)
	}
	return v
}

// walk calls f on n and every element below it.
func (n *svgNode) walk(f func(*svgNode)) {
	f(n)
	for i := range n.Children {
		n.Children[i].walk(f)
	}
}

// parseSVG parses an SVG document, failing the test if it is not XML.
func parseSVG(t *testing.T, svg string) *svgNode {
	t.Helper()
	var root svgNode
	if err := xml.Unmarshal([]byte(svg), &root); err != nil {
		t.Fatalf("SVG is not well-formed XML: %v", err)
	}
	if root.XMLName.Local != "svg" {
		t.Fatalf("root element is %q", root.XMLName.Local)
	}
	return &root
}

// panels returns the chart's panels by id.
func panels(root *svgNode) map[string]*svgNode {
	out := map[string]*svgNode{}
	root.walk(func(n *svgNode) {
		if n.XMLName.Local == "g" && n.attr("class") == "panel" {
			out[n.attr("id")] = n
		}
	})
	return out
}

// checkTextInside asserts that every text element, by the chart's own
// conservative width estimate, lies inside the drawing: horizontal text
// between x = 0 and the width, rotated text between y = 0 and the height.
func checkTextInside(t *testing.T, root *svgNode) {
	t.Helper()
	width, height := root.num(t, "width"), root.num(t, "height")
	n := 0
	root.walk(func(e *svgNode) {
		if e.XMLName.Local != "text" {
			return
		}
		n++
		x, y, size := e.num(t, "x"), e.num(t, "y"), e.num(t, "font-size")
		w := textWidth(e.Text, size, e.attr("font-weight") == "bold")
		var from float64
		switch e.attr("text-anchor") {
		case "", "start":
			from = 0
		case "middle":
			from = -w / 2
		case "end":
			from = -w
		default:
			t.Fatalf("text %q: text-anchor %q", e.Text, e.attr("text-anchor"))
		}
		if tr := e.attr("transform"); tr != "" {
			// rotate(-90 x y): the text reads upwards from (x, y).
			if !strings.HasPrefix(tr, "rotate(-90 ") {
				t.Fatalf("text %q: unexpected transform %q", e.Text, tr)
			}
			lo, hi := y-from-w, y-from
			if lo < 0 || hi > height || x-size < 0 || x+size > width {
				t.Errorf("rotated text %q (%.0f px) spans y %.1f..%.1f at x %.1f, outside %.0fx%.0f", e.Text, w, lo, hi, x, width, height)
			}
			return
		}
		if left, right := x+from, x+from+w; left < 0 || right > width {
			t.Errorf("text %q (%.1f px at %.1f pt) spans x %.1f..%.1f, outside width %.0f", e.Text, w, size, left, right, width)
		}
		if y > height || y-size < 0 {
			t.Errorf("text %q at y %.1f outside height %.0f", e.Text, y, height)
		}
	})
	if n == 0 {
		t.Fatal("no text in the SVG")
	}
}

// checkBarsSpan asserts that the bars of a panel spread over its plot: the
// first starts and the last ends within 15% of the plot's edges.
func checkBarsSpan(t *testing.T, p *svgNode, wantBars int) {
	t.Helper()
	var plot *svgNode
	left, right := math.Inf(1), math.Inf(-1)
	bars := 0
	p.walk(func(e *svgNode) {
		if e.XMLName.Local != "rect" {
			return
		}
		switch e.attr("class") {
		case "plot":
			plot = e
		case "bar":
			bars++
			x := e.num(t, "x")
			left, right = min(left, x), max(right, x+e.num(t, "width"))
		}
	})
	if plot == nil {
		t.Fatalf("panel %s has no plot area", p.attr("id"))
	}
	if bars != wantBars {
		t.Fatalf("panel %s: %d bars, want %d", p.attr("id"), bars, wantBars)
	}
	px, pw := plot.num(t, "x"), plot.num(t, "width")
	if left < px || right > px+pw {
		t.Errorf("panel %s: bars %.1f..%.1f outside the plot %.1f..%.1f", p.attr("id"), left, right, px, px+pw)
	}
	if left-px > 0.15*pw || px+pw-right > 0.15*pw {
		t.Errorf("panel %s: bars %.1f..%.1f crowd part of the plot %.1f..%.1f", p.attr("id"), left, right, px, px+pw)
	}
}

// chartBench returns a bench for systems and tests with every sample
// successful: K at fixed values, other systems at fractions of them, CPU
// for the userspace systems, RTT when ping is selected.
func chartBench(t *testing.T, systems, tests string) *bench {
	t.Helper()
	cfg, err := parseFlags([]string{"--systems", systems, "--tests", tests, "--rounds", "3",
		"--baseline-bin", "/usr/local/bin/vxland-old", "--baseline-name", "cf6a88a"})
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{cfg: cfg, skipped: map[string]string{},
		info: machineInfo{Date: "2026-12-02T16:00:00Z", NProc: 2, Kernel: "6.18.0-1-cloud-amd64-with-a-long-name",
			GitCommit: strings.Repeat("b", 40), GitDirty: true}}
	factor := map[string]float64{"veth": 3, "K": 1, "VK": 0.5, "VB": 0.3, "VV": 0.4, "N": 0.1, "O": 0.12}
	for round := 1; round <= cfg.rounds; round++ {
		for _, s := range b.reportRows() {
			if s.Name == "veth" && round > 1 {
				continue
			}
			f := factor[s.Name]
			for _, it := range iperfTests {
				if !cfg.tests[it.Key] {
					continue
				}
				k := 10.0 + float64(round)
				if it.UDPLen > 0 {
					k = 1e5
				}
				b.add(s.Name, round, it.Key, k*f, unitOf(it), nil, nil)
				if s.A != sideKernel && s.A != sideNone && it.UDPLen == 0 {
					b.add(s.Name, round, "cpu_"+it.Key, 1/f, "s/GB", nil, nil)
				}
			}
			if cfg.tests["ping"] {
				b.add(s.Name, round, "rtt_p50", 0.03/f, "ms", nil, nil)
				b.add(s.Name, round, "rtt_p99", 0.08/f, "ms", nil, nil)
			}
		}
	}
	return b
}

func TestSVGLayout(t *testing.T) {
	cases := []struct {
		name, systems, tests string
		tput, cpu, rtt       int // bars expected per panel; 0 = panel absent
	}{
		// veth + K, VK, VB: 4 rows; tcp1 = 2 keys.
		{"one test", "K,VK", "tcp1,ping", 4 * 2, 2 * 2, 4 * 2},
		// veth + 7 systems (VB inserted after VK), 8 throughput keys.
		{"all tests", "K,VK,VV,N,O", "all", 7 * 8, 5 * 4, 7 * 2},
		// UDP only: no CPU panel, no RTT panel.
		{"udp only", "K,VK,N", "udp64", 5 * 2, 0, 0},
		// Ping only: no throughput, no CPU.
		{"ping only", "K,VK", "ping", 0, 0, 4 * 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := chartBench(t, c.systems, c.tests)
			sum := summarize(b.samples)
			svg := b.renderSVG(sum)
			if dir := os.Getenv("VXBENCH_SVG_DIR"); dir != "" { // for looking at it
				_ = os.WriteFile(filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".svg"), []byte(svg), 0o644)
			}
			root := parseSVG(t, svg)
			checkTextInside(t, root)
			ps := panels(root)
			for id, want := range map[string]int{"throughput": c.tput, "cpu": c.cpu, "rtt": c.rtt} {
				p, ok := ps[id]
				if want == 0 {
					if ok {
						t.Errorf("panel %s drawn without data", id)
					}
					continue
				}
				if !ok {
					t.Errorf("panel %s missing", id)
					continue
				}
				checkBarsSpan(t, p, want)
			}
		})
	}
}

func TestSVGRTTAndCPULabels(t *testing.T) {
	b := chartBench(t, "K,VK", "tcp1,ping")
	sum := summarize(b.samples)
	root := parseSVG(t, b.renderSVG(sum))
	texts := func(id string) string {
		var all []string
		panels(root)[id].walk(func(e *svgNode) {
			if e.XMLName.Local == "text" {
				all = append(all, e.Text)
			}
		})
		return strings.Join(all, "\n")
	}
	// VK's RTT p50 is 60 µs, 2× K's 30 µs; VB's is 100 µs.
	rtt := texts("rtt")
	for _, want := range []string{"30.0\n", "60.0 2.00×", "100 3.33×"} {
		if !strings.Contains(rtt+"\n", want) {
			t.Errorf("RTT panel lacks label %q:\n%s", want, rtt)
		}
	}
	// CPU s/GB: VK 2, VB 3.33; VK vs VB = 0.6 = -40%.
	cpu := texts("cpu")
	for _, want := range []string{"2.00", "3.33", "VK vs VB: -40%"} {
		if !strings.Contains(cpu, want) {
			t.Errorf("CPU panel lacks %q:\n%s", want, cpu)
		}
	}
}

func TestTextFits(t *testing.T) {
	long := "2026-12-02T16:00:00Z · 3 rounds × 5s · 2 CPUs · Linux 6.18.0-1-cloud-amd64 · commit bbbbbbbbbbbb · N, O: peer veth offloads off"
	for _, maxW := range []float64{200, 400, 1000} {
		lines := wrapText(long, 11, false, maxW)
		if strings.Join(lines, " ") != strings.Join(strings.Fields(long), " ") {
			t.Fatalf("wrapText lost words: %q", lines)
		}
		for _, l := range lines {
			if w := textWidth(l, 11, false); w > maxW && strings.Contains(l, " ") {
				t.Errorf("line %q is %.0f px, over %v", l, w, maxW)
			}
		}
	}
	if s := fitSize("TCP 4 streams", 11, false, 40); textWidth("TCP 4 streams", s, false) > 40 && s != minFont {
		t.Errorf("fitSize = %v", s)
	}
	// Wider glyphs measure wider.
	if textWidth("MMMM", 10, false) <= textWidth("iiii", 10, false) || textWidth("ab", 10, true) <= textWidth("ab", 10, false) {
		t.Error("textWidth does not tell glyphs apart")
	}
}

func TestBaselineCPUComparison(t *testing.T) {
	b := chartBench(t, "K,VK", "tcp1,tcp4")
	sum := summarize(b.samples)
	md := b.renderMarkdown(sum, b.notesList(sum), false)
	if !strings.Contains(md, "CPU s/GB VK vs VB: -40%") {
		t.Errorf("markdown lacks the VK vs VB line:\n%s", md)
	}
	if !strings.Contains(md, "| VB |") || !strings.Contains(md, "cf6a88a") {
		t.Errorf("markdown lacks the VB row or its build:\n%s", md)
	}
	c := baselineCPU(sum)
	if c == nil || len(c.PerKey) != 4 || math.Abs(c.Median-0.6) > 1e-9 {
		t.Fatalf("baselineCPU = %+v", c)
	}
	// Without VB there is no comparison.
	delete(sum, "VB")
	if baselineCPU(sum) != nil {
		t.Error("comparison without VB")
	}
}

func TestBaselineFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"--systems", "K,VK,VV", "--baseline-bin", "x"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(orderNames(cfg.systems), ","); got != "K,VK,VB,VV" {
		t.Errorf("order = %s, want VB right after VK", got)
	}
	cfg, err = parseFlags([]string{"--systems", "VB,K", "--baseline-bin", "x"})
	if err != nil || strings.Join(orderNames(cfg.systems), ",") != "VB,K" {
		t.Errorf("explicit VB: %v %v", orderNames(cfg.systems), err)
	}
	if _, err := parseFlags([]string{"--systems", "K,VB"}); err == nil {
		t.Error("VB without --baseline-bin accepted")
	}
	cfg, _ = parseFlags(nil)
	for _, s := range cfg.systems {
		if s.Name == "VB" {
			t.Error("VB without --baseline-bin")
		}
	}
}
