package config

import (
	"os"
	"strings"
	"testing"
)

const docPath = "../docs/config.md"

// tomlBlocks returns the ```toml blocks of a Markdown file.
func tomlBlocks(t testing.TB, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	var cur *strings.Builder
	for _, line := range strings.SplitAfter(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```toml":
			cur = new(strings.Builder)
		case cur != nil && trimmed == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line)
		}
	}
	if cur != nil {
		t.Fatalf("%s: unterminated ```toml block", path)
	}
	return blocks
}

// Every TOML block in docs/config.md is a complete, valid configuration.
func TestDocExamples(t *testing.T) {
	t.Setenv("VXLAND_RUNDIR", "/run/vxland")
	blocks := tomlBlocks(t, docPath)
	if len(blocks) == 0 {
		t.Fatalf("%s: no ```toml block", docPath)
	}
	for i, b := range blocks {
		if _, err := Parse([]byte(b), docPath); err != nil {
			t.Errorf("%s: toml block %d:\n%v", docPath, i+1, err)
		}
	}

	// The main example is as its text describes it.
	cfg, err := Parse([]byte(blocks[0]), docPath)
	if err != nil {
		t.FailNow()
	}
	if len(cfg.VNIs) != 4 {
		t.Fatalf("example has %d VNIs, want 4", len(cfg.VNIs))
	}
	eps := cfg.Endpoints()
	if len(eps) != 2 || len(eps[0].VNIs) != 3 || eps[0].Dev != "ul0" || eps[0].Port != 4789 ||
		eps[1].Port != 8472 || !eps[1].V6 {
		t.Errorf("example endpoints: %+v", eps)
	}
	if v := cfg.VNIs[1]; v.NetnsPath() != "/run/netns/blue" || !v.Group.IsMulticast() || v.Learning {
		t.Errorf("example vni 41: %+v", v)
	}
}

// The key tables of docs/config.md are those config.KeyTable renders.
// VXLAND_UPDATE_DOCS=1 rewrites them.
func TestDocKeyTables(t *testing.T) {
	data, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, section := range append([]Section{SectionVNI}, Sections...) {
		begin := "<!-- keys:" + string(section) + " "
		i := strings.Index(doc, begin)
		if i < 0 {
			t.Errorf("%s: no %q marker", docPath, begin)
			continue
		}
		i += strings.Index(doc[i:], "\n") + 1
		j := strings.Index(doc[i:], "<!-- end keys -->")
		if j < 0 {
			t.Errorf("%s: %q has no end marker", docPath, begin)
			continue
		}
		want := MarkdownTable(section)
		if got := doc[i : i+j]; got != want {
			if os.Getenv("VXLAND_UPDATE_DOCS") == "1" {
				doc = doc[:i] + want + doc[i+j:]
				continue
			}
			t.Errorf("%s: the %s key table is not config.KeyTable's; run VXLAND_UPDATE_DOCS=1 go test ./config\ngot:\n%s\nwant:\n%s", docPath, section, got, want)
		}
	}
	if os.Getenv("VXLAND_UPDATE_DOCS") == "1" && doc != string(data) {
		if err := os.WriteFile(docPath, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Every TOML block in the README is a valid configuration too.
func TestReadmeExamples(t *testing.T) {
	const readme = "../README.md"
	blocks := tomlBlocks(t, readme)
	if len(blocks) == 0 {
		t.Fatalf("%s: no ```toml block", readme)
	}
	for i, b := range blocks {
		cfg, err := Parse([]byte(b), readme)
		if err != nil {
			t.Errorf("%s: toml block %d:\n%v", readme, i+1, err)
			continue
		}
		if len(cfg.Endpoints()) != 1 {
			t.Errorf("%s: toml block %d: VNIs should share one socket: %+v", readme, i+1, cfg.Endpoints())
		}
	}
}
