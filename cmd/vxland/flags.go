package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/vxland/vxland/config"
	"github.com/vxland/vxland/encap"
)

// usageError is a problem with the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func badf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// usageHeader and usageFooter frame the flag lists of --help, which come
// from config.KeyTable.
const usageHeader = `vxland: a userspace VXLAN endpoint (RFC 7348), interoperable with Linux vxlan.

Usage:
  vxland --vni N [--remote IP... | --group IP --dev IFACE] [options]
  vxland --config FILE

It creates a TAP device that behaves like the device of
  ip link add vxlan0 type vxlan id N remote IP dstport 4789
and forwards its frames over UDP without the kernel's vxlan driver.
`

const usageFooter = `
Examples:
  vxland --vni 40 --remote 192.0.2.2 --addr 203.0.113.1/24 --up
  vxland --vni 42 --remote 192.0.2.2 --remote 192.0.2.3 --dstport 8472
  vxland --vni 7 --group 239.1.1.1 --dev eth0 --master br0 --up
  vxland --vni 9 --remote 192.0.2.2 --netns blue --addr 203.0.113.9/24 --up
  vxlanctl fdb append 00:00:00:00:00:00 dev vxland0 dst 192.0.2.4

Exit status: 0 after SIGINT/SIGTERM, 2 for bad flags or a setup failure, 1 for a
failure while running. TAPs and control sockets are removed on exit.
`

// processFlags are the flags that are not configuration keys, listed under
// the Daemon heading of --help.
var processFlags = [][2]string{
	{"--config FILE", "serve the VNIs a TOML file declares (see docs/config.md)"},
	{"--cpuprofile FILE", "write a Go CPU profile to FILE until exit (for 'go tool pprof')"},
	{"--version", "print the version and exit"},
	{"-h, --help", "show this help"},
}

// usageText is the whole of --help.
func usageText() string {
	var b strings.Builder
	b.WriteString(usageHeader)
	for _, g := range config.HelpGroups {
		b.WriteString("\n" + g + ":\n")
		config.WriteFlagHelp(&b, g)
		if g == config.GroupDaemon {
			for _, f := range processFlags {
				config.WriteHelpLine(&b, f[0], f[1])
			}
		}
	}
	b.WriteString(usageFooter)
	return b.String()
}

// versionString names the build: module version and VCS revision when the
// binary carries them.
func versionString() string {
	v, rev, dirty := "(devel)", "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		return fmt.Sprintf("vxland %s (%s%s) %s", v, rev, dirty, runtime.Version())
	}
	return fmt.Sprintf("vxland %s %s", v, runtime.Version())
}

// cpuProfile is where --cpuprofile writes, "" for nowhere.
var cpuProfile string

// keyFlag is the flag.Value of a configuration key: it parses into the
// configuration being built and remembers what it was given.
type keyFlag struct {
	key    *config.Key
	target config.Target
	name   string   // "--vni" or "--id"
	values []string // every argument given, in order
	first  *error   // where the first error goes: flag's wording loses it
}

func (f *keyFlag) String() string { return "" }

func (f *keyFlag) Set(s string) error {
	f.values = append(f.values, s)
	err := f.key.ParseFlag(f.target, f.name, s)
	if err != nil && *f.first == nil {
		*f.first = &usageError{err.Error()}
	}
	return err
}

// IsBoolFlag lets boolean keys be given alone (--up) as well as --up=false.
func (f *keyFlag) IsBoolFlag() bool { return f.key.Kind == config.KindBool }

// parseFlags turns the command line into a validated configuration. It
// returns nil, nil after printing --help. Every configuration key with a
// flag in config.KeyTable is a flag here, parsed by the key's own parser.
func parseFlags(args []string, out io.Writer) (*config.Config, error) {
	v := config.NewVNI(0) // ip-link's defaults; the ID comes from --vni
	cfg := &config.Config{Version: config.Version, Cluster: config.NewCluster(), BGP: config.NewBGP()}
	target := config.Target{VNI: &v, Daemon: &cfg.Daemon, Etcd: &cfg.Etcd, Flannel: &cfg.Flannel, Cluster: &cfg.Cluster, BGP: &cfg.BGP}
	var setErr error // a key's own message, clearer than flag's
	fs := flag.NewFlagSet("vxland", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	keyFlags := map[string]*keyFlag{}
	for i := range config.KeyTable {
		k := &config.KeyTable[i]
		if k.Flag == "" {
			continue
		}
		if k.FlagDefault != "" {
			if err := k.ParseFlag(target, "--"+k.Flag, k.FlagDefault); err != nil {
				return nil, fmt.Errorf("default of --%s: %w", k.Flag, err)
			}
		}
		for _, name := range append([]string{k.Flag}, k.FlagAliases...) {
			kf := &keyFlag{key: k, target: target, name: "--" + name, first: &setErr}
			keyFlags[name] = kf
			fs.Var(kf, name, "")
		}
	}
	var (
		file    = fs.String("config", "", "")
		help    = fs.Bool("help", false, "")
		version = fs.Bool("version", false, "")
	)
	fs.BoolVar(help, "h", false, "")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "")

	if err := fs.Parse(args); err != nil {
		if setErr != nil {
			return nil, setErr
		}
		// flag's own messages, made one line.
		return nil, badf("%s", strings.TrimSpace(strings.SplitN(err.Error(), "\n", 2)[0]))
	}
	if *help {
		fmt.Fprint(out, usageText())
		return nil, nil
	}
	if *version {
		fmt.Fprintln(out, versionString())
		return nil, nil
	}
	if fs.NArg() > 0 {
		return nil, badf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	var given []*keyFlag // the key flags on the command line, in flag order
	fs.Visit(func(f *flag.Flag) {
		if kf, ok := keyFlags[f.Name]; ok {
			given = append(given, kf)
		}
	})
	if *file != "" {
		return fileConfig(*file, given)
	}
	vniFlags := slices.DeleteFunc(slices.Clone(given), func(kf *keyFlag) bool { return kf.key.Section != config.SectionVNI })
	switch {
	case cfg.Flannel.Enable && len(vniFlags) > 0:
		return nil, badf("--flannel takes the VNI and its settings from the flannel network in etcd; drop %s", flagList(vniFlags))
	case !cfg.Flannel.Enable && !slices.ContainsFunc(given, func(kf *keyFlag) bool { return kf.key.Name == "id" }):
		return nil, badf("--vni is required (0-%d), or --config FILE, or --flannel", encap.MaxVNI)
	case !cfg.Flannel.Enable:
		cfg.VNIs = []config.VNI{v}
	}
	cfg.FillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, &usageError{flagWords(err)}
	}
	return cfg, nil
}

// fileConfig loads --config FILE. The file declares every VNI; the flags
// of the other tables ([daemon], [etcd], [flannel]) may be given too, and
// override the file.
func fileConfig(file string, given []*keyFlag) (*config.Config, error) {
	vniFlags := slices.DeleteFunc(slices.Clone(given), func(kf *keyFlag) bool { return kf.key.Section != config.SectionVNI })
	if len(vniFlags) > 0 {
		return nil, badf("--config declares the VNIs; drop %s", flagList(vniFlags))
	}
	cfg, err := config.Load(file)
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	if len(given) == 0 {
		return cfg, nil
	}
	target := config.Target{Daemon: &cfg.Daemon, Etcd: &cfg.Etcd, Flannel: &cfg.Flannel, Cluster: &cfg.Cluster, BGP: &cfg.BGP}
	for _, kf := range given {
		if err := kf.key.Replace(target, kf.name, kf.values); err != nil {
			return nil, &usageError{err.Error()}
		}
	}
	cfg.FillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, &usageError{flagWords(err)}
	}
	return cfg, nil
}

// flagWords rewords a configuration error for the command line: the
// one-VNI model's "vni N (entry 1):" prefixes say nothing there.
func flagWords(err error) string {
	var parts []string
	var walk func(error)
	walk = func(e error) {
		var ce *config.Error
		switch {
		case errors.As(e, &ce) && ce.Err != nil:
			parts = append(parts, flagSpelling(ce.Key, ce.Err.Error()))
		default:
			if j, ok := e.(interface{ Unwrap() []error }); ok {
				for _, x := range j.Unwrap() {
					walk(x)
				}
				return
			}
			parts = append(parts, e.Error())
		}
	}
	walk(err)
	return strings.Join(parts, "; ")
}

// flagSpelling rewrites a message that starts with a configuration key
// ("remote 239.1.1.1: ...") to start with its flag ("--remote 239.1.1.1: ...").
func flagSpelling(key, msg string) string {
	k := config.LookupKey(config.SectionVNI, key)
	if k == nil || k.Flag == "" {
		return msg
	}
	for _, sep := range []string{" ", ":"} {
		if rest, ok := strings.CutPrefix(msg, key+sep); ok {
			return "--" + k.Flag + sep + rest
		}
	}
	return msg
}

// flagList names flags for a message: "--vni --remote".
func flagList(kfs []*keyFlag) string {
	names := make([]string, len(kfs))
	for i, kf := range kfs {
		names[i] = kf.name
	}
	return strings.Join(names, " ")
}
