package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/vxland/vxland/metrics"
)

// dashboardPath is the Grafana dashboard shipped for these metrics.
const dashboardPath = "../contrib/grafana/vxland.json"

type dashboard struct {
	Title      string
	UID        string
	Panels     []dashPanel
	Templating struct {
		List []struct {
			Name  string
			Type  string
			Query any // a string, or {"query": "..."}
		}
	}
}

type dashPanel struct {
	ID         int
	Type       string
	Title      string
	Datasource struct{ UID string }
	GridPos    struct{ X, Y, W, H int }
	Targets    []struct {
		RefID string
		Expr  string
	}
}

// metricRef matches the metric names a PromQL expression uses.
var metricRef = regexp.MustCompile(`\b(?:vxland|go|process)_[a-zA-Z0-9_]+`)

// TestDashboard checks that the dashboard is valid JSON of the expected
// shape and that every metric it queries is one this package exports: the
// fixed ones (FDB, build, runtime, process) as a registry really gathers
// them, counters by their naming rule. The interop tests check the counter
// names against a running daemon's scrape.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard title %q, uid %q: both must be set", d.Title, d.UID)
	}

	var exprs []string
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		switch q := v.Query.(type) {
		case string:
			exprs = append(exprs, q)
		case map[string]any:
			if s, ok := q["query"].(string); ok {
				exprs = append(exprs, s)
			}
		}
	}
	if !vars["datasource"] {
		t.Error("no datasource variable")
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %q, want the ${datasource} variable", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if !balanced(tg.Expr) {
				t.Errorf("panel %q: unbalanced brackets in %q", p.Title, tg.Expr)
			}
			for _, v := range regexp.MustCompile(`\$(\w+)`).FindAllStringSubmatch(tg.Expr, -1) {
				if !vars[v[1]] && !strings.HasPrefix(v[1], "__") {
					t.Errorf("panel %q: unknown variable $%s in %q", p.Title, v[1], tg.Expr)
				}
			}
			exprs = append(exprs, tg.Expr)
		}
	}

	// What a registry with one device and one socket really gathers.
	dev := newFakeDev(t, 40)
	src := &fakeSource{}
	src.set([]metrics.Device{dev.device("vx0", 40)}, []metrics.Endpoint{{Local: "0.0.0.0", Port: 4789, Counters: newFakeSocket().set.Snapshot}})
	mfs, err := metrics.NewRegistry(src).Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, mf := range mfs {
		exported[mf.GetName()] = true
	}
	counter := regexp.MustCompile(`^vxland_[a-z0-9_]+_total$`)
	used := 0
	for _, e := range exprs {
		for _, name := range metricRef.FindAllString(e, -1) {
			used++
			if !exported[name] && !counter.MatchString(name) {
				t.Errorf("dashboard queries %s, which the exporter does not export (in %q)", name, e)
			}
		}
	}
	if used == 0 {
		t.Error("the dashboard queries no metric")
	}
}

// balanced reports whether every (, [ and { in s is closed in order,
// ignoring quoted strings.
func balanced(s string) bool {
	var stack []byte
	pair := map[byte]byte{')': '(', ']': '[', '}': '{'}
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '(' || c == '[' || c == '{':
			stack = append(stack, c)
		case pair[c] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pair[c] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0 && quote == 0
}
