package main

import (
	"fmt"
	"math"
	"strings"
)

// systemColors gives each system a fixed colour in the chart.
var systemColors = map[string]string{
	"veth": "#9e9e9e",
	"K":    "#4c72b0",
	"VK":   "#dd8452",
	"VV":   "#55a868",
	"N":    "#c44e52",
	"O":    "#8172b3",
}

// xmlEscape escapes text for SVG.
var xmlEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace

// renderSVG draws a grouped bar chart: one group per throughput test, one bar
// per system, height = median ratio to K (K itself is 1; a dashed line marks
// it). Tests or systems without a ratio get a small "×" at the baseline.
func (b *bench) renderSVG(sum map[string]map[string]*summary) string {
	var keys []string
	for _, m := range metrics {
		if m.Chart && b.metricSelected(m.Key) {
			keys = append(keys, m.Key)
		}
	}
	var rows []system
	for _, s := range b.reportRows() {
		if _, skip := b.skipped[s.Name]; !skip {
			rows = append(rows, s)
		}
	}
	maxRatio := 1.0
	for _, s := range rows {
		for _, k := range keys {
			if sm := sum[s.Name][k]; sm != nil && sm.RatioK != nil {
				maxRatio = max(maxRatio, *sm.RatioK)
			}
		}
	}
	// Cap the axis so that one outlier (usually veth against a K sample
	// that hit a noisy moment) does not flatten every other bar; clipped
	// bars get a white notch and their value printed.
	const capRatio = 2.0
	top := niceCeil(min(maxRatio, capRatio) * 1.08)

	const (
		barW    = 16.0
		gap     = 30.0
		left    = 64.0
		right   = 24.0
		titleH  = 70.0
		plotH   = 300.0
		bottomH = 64.0
	)
	nb := float64(max(len(rows), 1))
	groupW := nb*barW + gap
	width := left + float64(max(len(keys), 1))*groupW + right
	width = max(width, 640)
	height := titleH + plotH + bottomH
	y := func(v float64) float64 { return titleH + plotH - v/top*plotH }

	var w strings.Builder
	fmt.Fprintf(&w, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&w, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	title := "Throughput relative to kernel vxlan (K = 1), medians of interleaved rounds"
	fmt.Fprintf(&w, `<text x="%.0f" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", left, xmlEscape(title))
	sub := fmt.Sprintf("%s · %d rounds × %v · %d CPUs · Linux %s · commit %s", b.info.Date, b.cfg.rounds, b.cfg.duration,
		b.info.NProc, b.info.Kernel, shortCommit(b.info.GitCommit))
	if (b.wants("N") || b.wants("O")) && b.cfg.offloadsOff {
		sub += " · N, O: peer veth offloads off"
	}
	fmt.Fprintf(&w, `<text x="%.0f" y="40" font-size="11" fill="#555">%s</text>`+"\n", left, xmlEscape(sub))

	// Legend.
	lx := left
	for _, s := range rows {
		fmt.Fprintf(&w, `<rect x="%.1f" y="50" width="11" height="11" fill="%s"/>`, lx, colorOf(s.Name))
		fmt.Fprintf(&w, `<text x="%.1f" y="60" font-size="11">%s</text>`+"\n", lx+15, xmlEscape(s.Name))
		lx += 24 + 7*float64(len(s.Name))
	}

	// Axis and grid.
	step := niceStep(top)
	for v := 0.0; v <= top+1e-9; v += step {
		fmt.Fprintf(&w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e0e0e0"/>`, left, y(v), width-right, y(v))
		fmt.Fprintf(&w, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="end">%s</text>`+"\n", left-6, y(v)+3.5, trimFloat(v))
	}
	fmt.Fprintf(&w, `<text x="14" y="%.1f" font-size="11" transform="rotate(-90 14 %.1f)" text-anchor="middle">ratio to K</text>`+"\n",
		titleH+plotH/2, titleH+plotH/2)
	fmt.Fprintf(&w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", left, y(0), width-right, y(0))

	// Bars.
	for gi, k := range keys {
		gx := left + gap/2 + float64(gi)*groupW
		for bi, s := range rows {
			x := gx + float64(bi)*barW
			sm := sum[s.Name][k]
			if sm == nil || sm.RatioK == nil {
				fmt.Fprintf(&w, `<text x="%.1f" y="%.1f" font-size="10" fill="%s" text-anchor="middle">×</text>`+"\n",
					x+barW/2, y(0)-3, colorOf(s.Name))
				continue
			}
			r := *sm.RatioK
			h := min(r, top) // clipped height
			fmt.Fprintf(&w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s (median %s %s)</title></rect>`+"\n",
				x+1, y(h), barW-2, y(0)-y(h), colorOf(s.Name), xmlEscape(s.Name), xmlEscape(headerOf(k)),
				fmtRatio(r), fmtNum(displayValue(k, sm.Median)), displayUnit(k))
			ly := y(h) - 3
			if r > top {
				fmt.Fprintf(&w, `<rect x="%.1f" y="%.1f" width="%.1f" height="4" fill="#ffffff"/>`+"\n", x, y(h)+10, barW)
				ly = y(h) + 22 + 5*float64(len(trimRatio(r)))
			}
			fmt.Fprintf(&w, `<text x="%.1f" y="%.1f" font-size="9" transform="rotate(-90 %.1f %.1f)">%s</text>`+"\n",
				x+barW/2+3, ly, x+barW/2+3, ly, trimRatio(r))
		}
		// Group label, two lines.
		cx := gx + nb*barW/2
		label := headerOf(k)
		l1, l2 := splitLabel(strings.TrimSuffix(strings.TrimSuffix(label, " (Gbit/s)"), " (kpps)"))
		fmt.Fprintf(&w, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle">%s</text>`, cx, y(0)+18, xmlEscape(l1))
		fmt.Fprintf(&w, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle">%s</text>`+"\n", cx, y(0)+32, xmlEscape(l2))
	}
	// Reference line at K = 1.
	fmt.Fprintf(&w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#4c72b0" stroke-dasharray="5,3"/>`, left, y(1), width-right, y(1))
	fmt.Fprintf(&w, `<text x="%.1f" y="%.1f" font-size="10" fill="#4c72b0" text-anchor="end">K</text>`+"\n", width-right-2, y(1)-3)
	fmt.Fprintf(&w, `<text x="%.1f" y="%.1f" font-size="10" fill="#555" text-anchor="end">× = failed or not measured · bars above %s are cut (notch), label = true ratio</text>`+"\n",
		width-right, height-8, trimFloat(top))
	w.WriteString("</svg>\n")
	return w.String()
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

// niceStep picks a grid step giving about 4 to 10 lines up to top.
func niceStep(top float64) float64 {
	for _, s := range []float64{0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10, 20, 25, 50, 100} {
		if top/s <= 10 {
			return s
		}
	}
	return top / 5
}

// trimFloat prints v without trailing zeros.
func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}
