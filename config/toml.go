package config

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Load reads the TOML configuration file at path and returns it parsed,
// with defaults filled in and validated: see Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return Parse(data, path)
}

// Parse parses a TOML configuration (docs/config.md), merges the
// [defaults] table into every [[vni]] entry, fills in the remaining
// defaults (FillDefaults) and validates the result (Validate). name is the
// file name used in messages; it becomes Config.Source.
//
// Every problem is reported, one per line: TOML syntax, unknown keys,
// values of the wrong type or out of range, then (when those are clean)
// Validate's rules.
func Parse(data []byte, name string) (*Config, error) {
	l := &errList{source: name}
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			l.add(fmt.Sprintf("line %d", pe.Position.Line), 0, "", syntaxError{pe})
		} else {
			l.add("", 0, "", fmt.Errorf("toml: %s", oneLine(err.Error())))
		}
		return nil, l.err()
	}

	for _, k := range sortedKeys(doc) {
		if !slices.Contains(topKeys, k) {
			l.add("", 0, k, unknownKey(k, topKeys, " at the top level"))
		}
	}
	raw, ok := doc["version"]
	if !ok {
		l.add("", 0, "version", errMissingVersion)
		return nil, l.err()
	}
	if n, isInt := raw.(int64); !isInt {
		l.addf("", 0, "version", "version: want the integer %d, got %s", Version, describe(raw))
		return nil, l.err()
	} else if n != Version {
		l.add("", 0, "version", unsupportedVersion(n))
		return nil, l.err()
	}

	// [daemon], [etcd], [flannel]: settings beside the VNIs.
	cfg := &Config{Version: Version, Source: name, Cluster: NewCluster(), BGP: NewBGP()}
	target := Target{Daemon: &cfg.Daemon, Etcd: &cfg.Etcd, Flannel: &cfg.Flannel, Cluster: &cfg.Cluster, BGP: &cfg.BGP}
	for _, section := range Sections {
		raw, ok := doc[string(section)]
		if !ok {
			continue
		}
		tab, isTab := raw.(map[string]any)
		if !isTab {
			l.addf("", 0, string(section), "%s: want a table ([%s]), got %s", section, section, describe(raw))
			continue
		}
		applyKeys(l, section, target, tab, string(section), 0)
	}

	// [defaults] over the built-in defaults.
	base := NewVNI(0)
	if raw, ok := doc["defaults"]; ok {
		tab, isTab := raw.(map[string]any)
		if !isTab {
			l.addf("", 0, "defaults", "defaults: want a table ([defaults]), got %s", describe(raw))
		} else {
			if _, ok := tab["id"]; ok {
				l.add("defaults", 0, "id", errors.New("id: cannot have a default; set it in each [[vni]]"))
			}
			applyKeys(l, SectionVNI, Target{VNI: &base}, tab, "defaults", 0)
		}
	}

	// [[vni]] entries.
	entries, err := vniEntries(doc["vni"])
	if err != nil && !(errors.Is(err, errNoVNIs) && cfg.Flannel.Enable) {
		l.add("", 0, "vni", err)
	}
	for i, tab := range entries {
		v := base.clone()
		where := fmt.Sprintf("vni entry %d", i+1)
		if raw, ok := tab["id"]; !ok {
			l.add(where, i+1, "id", errors.New("id: missing; every [[vni]] needs one (0-16777215)"))
		} else if n, isInt := raw.(int64); isInt {
			where = fmt.Sprintf("vni %d (entry %d)", n, i+1)
		}
		applyKeys(l, SectionVNI, Target{VNI: &v}, tab, where, i+1)
		cfg.VNIs = append(cfg.VNIs, v)
	}
	if cfg.Flannel.Enable && len(cfg.VNIs) > 0 {
		l.add("", 0, "vni", errors.New("flannel mode: the VNI comes from the flannel network configuration in etcd; drop the [[vni]] entries"))
	}
	if len(l.errs) > 0 {
		return nil, l.err()
	}
	cfg.FillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// syntaxError is a TOML syntax error without the position, which Error.Where
// carries.
type syntaxError struct{ pe toml.ParseError }

func (e syntaxError) Error() string { return "toml: " + oneLine(e.pe.Message) }
func (e syntaxError) Unwrap() error { return e.pe }

// oneLine escapes the control characters of s (the TOML parser quotes
// the input it stumbles on, newlines included), keeping messages one line.
func oneLine(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// vniEntries returns the [[vni]] tables.
func vniEntries(raw any) ([]map[string]any, error) {
	switch t := raw.(type) {
	case nil:
		return nil, errNoVNIs
	case []map[string]any:
		if len(t) == 0 {
			return nil, errNoVNIs
		}
		return t, nil
	case []any: // vni = [{...}, {...}]
		out := make([]map[string]any, 0, len(t))
		for i, e := range t {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("vni: entry %d: want a table, got %s", i+1, describe(e))
			}
			out = append(out, m)
		}
		if len(out) == 0 {
			return nil, errNoVNIs
		}
		return out, nil
	case map[string]any:
		return nil, errors.New("vni: write [[vni]] (an array of tables), not [vni]")
	}
	return nil, fmt.Errorf("vni: want [[vni]] tables, got %s", describe(raw))
}

var topKeys = []string{"version", "daemon", "etcd", "cluster", "flannel", "bgp", "defaults", "vni"}

// applyKeys sets t from the keys of one table of section, reporting unknown
// keys and bad values under where. Unknown keys are found here rather than
// with toml.MetaData.Undecoded, which does not say which [[vni]] entry a
// key is in.
func applyKeys(l *errList, section Section, t Target, tab map[string]any, where string, entry int) {
	known := SectionKeys(section)
	for _, name := range sortedKeys(tab) {
		if !slices.Contains(known, name) {
			context := ""
			if section != SectionVNI {
				context = " in [" + string(section) + "]"
			}
			l.add(where, entry, name, unknownKey(name, known, context))
		}
	}
	for i := range KeyTable {
		k := &KeyTable[i]
		val, ok := tab[k.Name]
		if !ok || k.Section != section || (k.Name == "id" && entry == 0) {
			continue // [defaults] id is reported by the caller
		}
		if err := k.decode(t, val); err != nil {
			l.add(where, entry, k.Name, err)
		}
	}
}

// aliases maps likely mistakes to the key meant.
var aliases = map[string]string{
	"vni": "id", "vxlan": "vni", "vnis": "vni", "default": "defaults",
	"remotes": "remote", "peer": "remote", "peers": "remote",
	"port": "dstport", "dst_port": "dstport", "src_port": "srcport",
	"aging": "ageing", "max_address": "maxaddress", "address": "addr",
	"addrs": "addr", "addresses": "addr", "namespace": "netns", "ns": "netns",
	"name": "tap", "ifname": "tap", "bridge": "master", "lladdr": "mac",
	"underlay": "dev", "socket": "control",
}

// unknownKey reports key as unknown, suggesting a known one it resembles.
func unknownKey(key string, known []string, context string) error {
	hint := ""
	if a, ok := aliases[strings.ToLower(key)]; ok && slices.Contains(known, a) {
		hint = a
	} else {
		lower := strings.ToLower(key)
		best := 3
		for _, k := range known {
			if d := distance(lower, k); d < best && d <= len(k)/2 {
				best, hint = d, k
			}
		}
		for _, k := range known {
			if hint == "" && len(lower) >= 3 && strings.HasPrefix(k, lower) {
				hint = k
			}
		}
	}
	if hint == "" && context != "" && slices.Contains(Keys(), key) {
		return fmt.Errorf("unknown key %q%s (put it under [defaults] or a [[vni]] entry)", key, context)
	}
	if hint != "" {
		return fmt.Errorf("unknown key %q%s (did you mean %q?)", key, context, hint)
	}
	return fmt.Errorf("unknown key %q%s", key, context)
}

// distance is the Levenshtein distance of two short strings.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// describe names a TOML value's type (and the value, when short) for
// messages.
func describe(val any) string {
	switch t := val.(type) {
	case string:
		if len(t) > 40 {
			return "a string"
		}
		return fmt.Sprintf("the string %q", t)
	case int64:
		return fmt.Sprintf("the integer %d", t)
	case float64:
		return fmt.Sprintf("the float %v", t)
	case bool:
		return fmt.Sprintf("%v (a boolean)", t)
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date/time"
	}
	return fmt.Sprintf("a %T", val)
}

// ParseTTL parses an outer TTL as ip-link writes it: "auto" (or "") for
// automatic (ttl 0), "inherit", or 1-255 in decimal, hex (0x..) or octal.
// The flag and the file both read it here.
func ParseTTL(s string) (ttl uint8, inherit, ok bool) {
	switch s {
	case "", "auto":
		return 0, false, true
	case "inherit":
		return 0, true, true
	}
	n, err := strconv.ParseUint(s, 0, 8)
	if err != nil || n == 0 {
		return 0, false, false
	}
	return uint8(n), false, true
}

// ParseTOS parses an outer TOS as ip-link writes it: "inherit", or 0-255
// in decimal, hex (0x10) or octal. The flag and the file both read it here.
func ParseTOS(s string) (tos uint8, inherit, ok bool) {
	if s == "inherit" {
		return 0, true, true
	}
	n, err := strconv.ParseUint(s, 0, 8)
	if err != nil {
		return 0, false, false
	}
	return uint8(n), false, true
}

// ParseSrcPort parses a source port range "MIN-MAX" (":" also separates,
// as some tools write it) with 1 <= MIN < MAX <= 65535.
func ParseSrcPort(s string) (lo, hi uint16, ok bool) {
	l, h, ok := strings.Cut(s, "-")
	if !ok {
		l, h, ok = strings.Cut(s, ":")
	}
	a, err1 := strconv.ParseUint(strings.TrimSpace(l), 10, 16)
	b, err2 := strconv.ParseUint(strings.TrimSpace(h), 10, 16)
	if !ok || err1 != nil || err2 != nil || a == 0 || b <= a {
		return 0, 0, false
	}
	return uint16(a), uint16(b), true
}
