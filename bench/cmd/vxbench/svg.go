package main

import (
	"fmt"
	"math"
	"strings"
	"unicode"
)

// systemColors gives each system a fixed colour in the chart.
var systemColors = map[string]string{
	"veth": "#9e9e9e",
	"K":    "#4c72b0",
	"VK":   "#dd8452",
	"VB":   "#937860",
	"VT":   "#da8bc3",
	"VV":   "#55a868",
	"N":    "#c44e52",
	"O":    "#8172b3",
}

// Chart geometry, in SVG user units (pixels).
const (
	svgMinWidth = 560.0  // narrowest chart, whatever is selected
	svgMaxWidth = 1200.0 // widest chart; bars get thinner beyond it
	svgLeft     = 64.0   // room for the y axis label and tick labels
	svgRight    = 24.0
	svgPad      = 14.0 // left edge of titles and paragraphs
	idealBarW   = 22.0 // bar width the chart is sized for
	idealGapW   = 26.0 // gap between groups the chart is sized for
	maxBarW     = 90.0 // bars never get wider than this
	plotH       = 230.0
	barFont     = 9.0  // bar value labels
	minFont     = 7.0  // text is shrunk to this size at most before wrapping
	maxLabelW   = 80.0 // longest rotated bar label given room above a panel
)

// xmlEscape escapes text for SVG.
var xmlEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace

// textWidth estimates, on the generous side, how wide s is when drawn in a
// sans-serif font of the given size: each glyph is given at least its
// advance in DejaVu Sans (the widest common sans-serif on Linux; Helvetica
// and Arial are narrower). It is what the chart uses to wrap and
// shrink text, and what the tests use to check that text fits.
func textWidth(s string, size float64, bold bool) float64 {
	em := 0.0
	for _, r := range s {
		switch {
		case r == ' ' || strings.ContainsRune(".,:;'|!()[]·", r):
			em += 0.40
		case r == 'i' || r == 'j' || r == 'l' || r == 'f' || r == 't' || r == 'I':
			em += 0.40
		case r == 'm' || r == 'w' || r == 'M' || r == 'W':
			em += 1.0
		case unicode.IsUpper(r):
			em += 0.78
		case r < 128:
			em += 0.64 // lower case, digits, other punctuation
		default:
			em += 1.0 // arrows, ×, µ, †: assume a full em
		}
	}
	if bold {
		em *= 1.12
	}
	return em * size
}

// wrapText breaks s at spaces into lines no wider than maxW at size. A word
// wider than maxW on its own gets a line of its own.
func wrapText(s string, size float64, bold bool, maxW float64) []string {
	var lines []string
	cur := ""
	for _, word := range strings.Fields(s) {
		try := word
		if cur != "" {
			try = cur + " " + word
		}
		if cur != "" && textWidth(try, size, bold) > maxW {
			lines = append(lines, cur)
			cur = word
			continue
		}
		cur = try
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

// fitSize returns the largest font size, at most size and at least minFont,
// at which s is no wider than maxW (minFont if none is).
func fitSize(s string, size float64, bold bool, maxW float64) float64 {
	for ; size > minFont; size -= 0.5 {
		if textWidth(s, size, bold) <= maxW {
			return size
		}
	}
	return minFont
}

// svgDoc accumulates the body of the chart from top to bottom.
type svgDoc struct {
	w     strings.Builder
	width float64
	y     float64 // top of the free space below what is drawn
}

// text draws one line of text. anchor is "start", "middle" or "end".
func (d *svgDoc) text(x, y, size float64, anchor string, bold bool, fill, s string) {
	fw := ""
	if bold {
		fw = ` font-weight="bold"`
	}
	fmt.Fprintf(&d.w, `<text x="%.1f" y="%.1f" font-size="%.1f" text-anchor="%s" fill="%s"%s>%s</text>`+"\n",
		x, y, size, anchor, fill, fw, xmlEscape(s))
}

// vtext draws text rotated to read upwards, anchored at (x, y).
func (d *svgDoc) vtext(x, y, size float64, anchor, fill, s string) {
	fmt.Fprintf(&d.w, `<text x="%.1f" y="%.1f" font-size="%.1f" text-anchor="%s" fill="%s" transform="rotate(-90 %.1f %.1f)">%s</text>`+"\n",
		x, y, size, anchor, fill, x, y, xmlEscape(s))
}

// para draws s as a paragraph from x to the right margin, wrapping it and,
// for a single word too wide for a line, shrinking it.
func (d *svgDoc) para(x, size float64, bold bool, fill, s string) {
	maxW := d.width - x - svgPad
	for _, line := range wrapText(s, size, bold, maxW) {
		sz := fitSize(line, size, bold, maxW)
		d.y += size * 1.3
		d.text(x, d.y, sz, "start", bold, fill, line)
	}
}

// barPanel is one bar chart inside the SVG: one group of bars per key, one
// bar per row.
type barPanel struct {
	id    string // element id of the panel's group
	title string
	note  string // second line under the title ("" = none)
	axis  string // y axis label
	keys  []string
	rows  []system
	// value returns the height of a bar and its label; ok is false for a
	// bar that failed or was not measured.
	value func(sys, key string) (v float64, label string, ok bool)
	// hover is the tooltip of a bar.
	hover func(sys, key string) string
	// ref returns the value of a dashed reference line across the group of
	// key (ok false = none) and whether it spans the whole plot.
	ref      func(key string) (v float64, whole bool, ok bool)
	refLabel string
	// capAt limits the axis so one outlier does not flatten every other
	// bar; taller bars are cut with a notch and keep their true label.
	capAt float64
	// groupLabel is the two-line label under a group.
	groupLabel func(key string) (string, string)
}

// draw renders the panel at d.y across the chart's width.
func (p *barPanel) draw(d *svgDoc) {
	fmt.Fprintf(&d.w, `<g class="panel" id="%s">`+"\n", p.id)
	d.y += 14
	d.para(svgPad, 13, true, "#222", p.title)
	if p.note != "" {
		d.para(svgPad, 11, false, "#555", p.note)
	}

	// Scale.
	maxV := 0.0
	labelW := 0.0
	for _, s := range p.rows {
		for _, k := range p.keys {
			if v, label, ok := p.value(s.Name, k); ok {
				maxV = max(maxV, v)
				labelW = max(labelW, textWidth(label, barFont, false))
			}
		}
	}
	if p.ref != nil {
		for _, k := range p.keys {
			if v, _, ok := p.ref(k); ok {
				maxV = max(maxV, v)
			}
		}
	}
	shown := maxV
	if p.capAt > 0 {
		shown = min(maxV, p.capAt)
	}
	top := niceCeil(shown * 1.08)
	plotTop := d.y + min(labelW, maxLabelW) + 10
	plotL, plotR := svgLeft, d.width-svgRight
	plotW := plotR - plotL
	y := func(v float64) float64 { return plotTop + plotH - v/top*plotH }
	base := y(0)

	fmt.Fprintf(&d.w, `<rect class="plot" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none"/>`+"\n",
		plotL, plotTop, plotW, plotH)
	step := niceStep(top)
	for v := 0.0; v <= top+1e-9; v += step {
		fmt.Fprintf(&d.w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e0e0e0"/>`+"\n", plotL, y(v), plotR, y(v))
		d.text(plotL-6, y(v)+3.5, 10, "end", false, "#333", trimFloat(v))
	}
	axisSize := fitSize(p.axis, 11, false, plotH)
	d.vtext(14, plotTop+plotH/2, axisSize, "middle", "#333", p.axis)
	fmt.Fprintf(&d.w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", plotL, base, plotR, base)

	// Groups fill the plot whatever their number: the chart's width was
	// chosen for the widest panel, and every panel spreads over it.
	nb := float64(max(len(p.rows), 1))
	groupW := plotW / float64(max(len(p.keys), 1))
	gap := min(max(groupW*0.25, 10), 60)
	barW := min((groupW-gap)/nb, maxBarW)
	for gi, k := range p.keys {
		gx := plotL + float64(gi)*groupW + (groupW-nb*barW)/2 // first bar
		// K's value for this group, under the bars.
		if p.ref != nil {
			if rv, whole, ok := p.ref(k); ok && !whole {
				fmt.Fprintf(&d.w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="5,3"/>`+"\n",
					gx-2, y(min(rv, top)), gx+nb*barW+2, y(min(rv, top)), colorOf("K"))
			}
		}
		for bi, s := range p.rows {
			x := gx + float64(bi)*barW
			v, label, ok := p.value(s.Name, k)
			if !ok {
				d.text(x+barW/2, base-3, 10, "middle", false, colorOf(s.Name), "×")
				continue
			}
			h := min(v, top) // clipped height
			fmt.Fprintf(&d.w, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>`+"\n",
				x+1, y(h), barW-2, base-y(h), colorOf(s.Name), xmlEscape(p.hover(s.Name, k)))
			lx := x + barW/2 + barFont*0.35
			size := fitSize(label, barFont, false, maxLabelW)
			if v > top {
				// Cut bar: a white notch, the true value inside in white.
				fmt.Fprintf(&d.w, `<rect x="%.1f" y="%.1f" width="%.1f" height="4" fill="#ffffff"/>`+"\n", x, y(h)+10, barW)
				d.vtext(lx, y(h)+18, size, "end", "#ffffff", label)
				continue
			}
			d.vtext(lx, y(h)-3, size, "start", "#222", label)
		}
		cx := plotL + (float64(gi)+0.5)*groupW
		l1, l2 := p.groupLabel(k)
		for i, l := range []string{l1, l2} {
			if l != "" {
				d.text(cx, base+18+14*float64(i), fitSize(l, 11, false, groupW-4), "middle", false, "#222", l)
			}
		}
	}
	if p.ref != nil && len(p.keys) > 0 {
		if rv, whole, ok := p.ref(p.keys[0]); ok && whole {
			fmt.Fprintf(&d.w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="5,3"/>`+"\n",
				plotL, y(rv), plotR, y(rv), colorOf("K"))
			d.text(plotR-2, y(rv)-3, 10, "end", false, colorOf("K"), p.refLabel)
		}
	}
	d.y = base + 40
	d.w.WriteString("</g>\n")
}

// renderSVG draws the chart: a header, then one panel per kind of result
// that has data: throughput as ratios to K (higher is better), CPU s/GB of
// the userspace dataplanes and RTT in microseconds (both lower is better).
// Its width follows the number of tests and systems; every panel spreads its
// bars over that width.
func (b *bench) renderSVG(sum map[string]map[string]*summary) string {
	var rows []system
	for _, s := range b.reportRows() {
		if _, skip := b.skipped[s.Name]; !skip {
			rows = append(rows, s)
		}
	}
	// withData keeps the keys that some row has a successful median for,
	// and the rows that have one for some key.
	withData := func(keys []string) ([]string, []system) {
		var ks []string
		var rs []system
		seen := map[string]bool{}
		for _, k := range keys {
			found := false
			for _, s := range rows {
				if sm := sum[s.Name][k]; sm != nil && sm.OK > 0 {
					found = true
					seen[s.Name] = true
				}
			}
			if found {
				ks = append(ks, k)
			}
		}
		for _, s := range rows {
			if seen[s.Name] {
				rs = append(rs, s)
			}
		}
		return ks, rs
	}

	var panels []*barPanel
	var tputKeys []string
	for _, m := range metrics {
		if m.Chart && b.metricSelected(m.Key) {
			tputKeys = append(tputKeys, m.Key)
		}
	}
	if len(tputKeys) > 0 {
		panels = append(panels, &barPanel{
			id:    "throughput",
			title: "Throughput relative to kernel vxlan (K = 1), higher is better",
			axis:  "ratio to K",
			keys:  tputKeys,
			rows:  rows,
			value: func(sys, key string) (float64, string, bool) {
				sm := sum[sys][key]
				if sm == nil || sm.RatioK == nil {
					return 0, "", false
				}
				return *sm.RatioK, trimRatio(*sm.RatioK), true
			},
			hover: func(sys, key string) string {
				sm := sum[sys][key]
				return fmt.Sprintf("%s %s: %s (median %s %s)", sys, labelOf(key), fmtRatio(*sm.RatioK),
					fmtNum(displayValue(key, sm.Median)), displayUnit(key))
			},
			ref:        func(string) (float64, bool, bool) { return 1, true, true },
			refLabel:   "K",
			capAt:      2,
			groupLabel: func(key string) (string, string) { return splitLabel(labelOf(key)) },
		})
	}

	var cpuAll []string
	for _, m := range metrics {
		if strings.HasPrefix(m.Key, "cpu_") {
			cpuAll = append(cpuAll, m.Key)
		}
	}
	if keys, rs := withData(cpuAll); len(keys) > 0 {
		note := "utime+stime of the dataplane processes per GB received (VV: both daemons); absolute values"
		if c := baselineCPU(sum); c != nil {
			note = "VK vs VB: " + pct(c.Median) + " (median over the TCP tests) · " + note
		}
		panels = append(panels, &barPanel{
			id:    "cpu",
			title: "CPU seconds per GB of the userspace dataplane, lower is better",
			note:  note,
			axis:  "CPU s/GB",
			keys:  keys,
			rows:  rs,
			value: func(sys, key string) (float64, string, bool) {
				sm := sum[sys][key]
				if sm == nil || sm.OK == 0 {
					return 0, "", false
				}
				return sm.Median, fmtNum(sm.Median), true
			},
			hover: func(sys, key string) string {
				return fmt.Sprintf("%s %s: median %s s/GB", sys, labelOf(key), fmtNum(sum[sys][key].Median))
			},
			capAt:      capFor(sum, rs, keys, 1, 3),
			groupLabel: func(key string) (string, string) { return splitLabel(strings.TrimPrefix(labelOf(key), "CPU ")) },
		})
	}

	if keys, rs := withData([]string{"rtt_p50", "rtt_p99"}); len(keys) > 0 {
		note := "absolute values in µs, ratio to K beside them; dashed line = K"
		panels = append(panels, &barPanel{
			id:    "rtt",
			title: "Round-trip time (ICMP echo through the tunnel), lower is better",
			note:  note,
			axis:  "RTT, µs",
			keys:  keys,
			rows:  rs,
			value: func(sys, key string) (float64, string, bool) {
				sm := sum[sys][key]
				if sm == nil || sm.OK == 0 {
					return 0, "", false
				}
				us := sm.Median * 1e3
				label := fmtNum(us)
				if sm.RatioK != nil && sys != "K" {
					label += " " + fmtRatio(*sm.RatioK)
				}
				return us, label, true
			},
			hover: func(sys, key string) string {
				sm := sum[sys][key]
				s := fmt.Sprintf("%s %s: median %s µs", sys, labelOf(key), fmtNum(sm.Median*1e3))
				if sm.RatioK != nil {
					s += " (" + fmtRatio(*sm.RatioK) + " K)"
				}
				return s
			},
			ref: func(key string) (float64, bool, bool) {
				if sm := sum["K"][key]; sm != nil && sm.OK > 0 {
					return sm.Median * 1e3, false, true
				}
				return 0, false, false
			},
			capAt:      capFor(sum, rs, keys, 1e3, 4),
			groupLabel: func(key string) (string, string) { return labelOf(key), "" },
		})
	}

	// Width: what the widest panel needs at the ideal bar size, within
	// bounds.
	natural := 0.0
	for _, p := range panels {
		natural = max(natural, float64(len(p.keys))*(float64(len(p.rows))*idealBarW+idealGapW))
	}
	width := min(max(svgLeft+natural+svgRight, svgMinWidth), svgMaxWidth)

	d := &svgDoc{width: width, y: 6}
	d.para(svgPad, 15, true, "#222", "vxland system benchmark")
	sub := fmt.Sprintf("medians of %d interleaved rounds × %v · %s · %d CPUs · Linux %s · commit %s", b.cfg.rounds, b.cfg.duration,
		b.info.Date, b.info.NProc, b.info.Kernel, shortCommit(b.info.GitCommit))
	if (b.wants("N") || b.wants("O")) && b.cfg.offloadsOff {
		sub += " · N, O: peer veth offloads off"
	}
	if b.wants(baselineSystem) && b.cfg.baselineName != "" {
		sub += " · VB = vxland " + b.cfg.baselineName
	}
	d.para(svgPad, 11, false, "#555", sub)
	d.legend(rows)
	for _, p := range panels {
		p.draw(d)
	}
	if len(panels) == 0 {
		d.para(svgPad, 12, false, "#222", "No results to draw.")
	}
	d.para(svgPad, 10, false, "#555", "× = failed or not measured · a notched bar is cut at the top of its axis; its label is the true value")
	height := d.y + 10

	var w strings.Builder
	fmt.Fprintf(&w, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&w, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	w.WriteString(d.w.String())
	w.WriteString("</svg>\n")
	return w.String()
}

// legend draws one coloured square and name per system, wrapping lines.
func (d *svgDoc) legend(rows []system) {
	x := svgPad
	d.y += 8
	for _, s := range rows {
		w := 15 + textWidth(s.Name, 11, false) + 12
		if x+w > d.width-svgPad && x > svgPad {
			x = svgPad
			d.y += 16
		}
		fmt.Fprintf(&d.w, `<rect x="%.1f" y="%.1f" width="11" height="11" fill="%s"/>`, x, d.y, colorOf(s.Name))
		d.text(x+15, d.y+10, 11, "start", false, "#222", s.Name)
		x += w
	}
	d.y += 14
}

// capFor returns the axis cap of a panel of absolute values: factor times
// the median of the medians shown (scaled by scale), so one outlier does not
// flatten the rest; 0 (no cap) when nothing is far above the others.
func capFor(sum map[string]map[string]*summary, rows []system, keys []string, scale, factor float64) float64 {
	var vs []float64
	for _, s := range rows {
		for _, k := range keys {
			if sm := sum[s.Name][k]; sm != nil && sm.OK > 0 {
				vs = append(vs, sm.Median*scale)
			}
		}
	}
	if len(vs) < 3 {
		return 0
	}
	return factor * median(vs)
}

// trimRatio is the short bar label of a ratio.
func trimRatio(r float64) string {
	switch {
	case r >= 10:
		return fmt.Sprintf("%.0f", r)
	case r < 0.1:
		return fmt.Sprintf("%.3f", r)
	}
	return fmt.Sprintf("%.2f", r)
}

// colorOf returns the colour of a system.
func colorOf(name string) string {
	if c, ok := systemColors[name]; ok {
		return c
	}
	return "#333333"
}

// splitLabel splits "TCP 1 stream A→B" into "TCP 1 stream" and "A→B".
func splitLabel(s string) (string, string) {
	i := strings.LastIndexByte(s, ' ')
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i+1:]
}

// niceCeil rounds v up to 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if m*p >= v-1e-12 {
			return m * p
		}
	}
	return 10 * p
}

// niceStep picks a grid step of 1, 2, 2.5 or 5 times a power of ten giving
// at most 8 steps up to top.
func niceStep(top float64) float64 {
	if top <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(top/8)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if top/(m*p) <= 8+1e-9 {
			return m * p
		}
	}
	return 10 * p
}

// trimFloat prints v without trailing zeros.
func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}
