package specconv

import (
	"encoding/json"
	"os"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/pkg/errdefs"
)

// SeccompProfile is Docker's seccomp profile format: what
// `--security-opt seccomp=FILE` holds (the CLI sends the file's content)
// and what DefaultSeccompProfile is written in. Unlike the OCI form, its
// rules can depend on the container's capabilities, the architecture and
// the kernel version; SeccompSpec resolves them for one container.
type SeccompProfile struct {
	DefaultAction    specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet  *uint                    `json:"defaultErrnoRet,omitempty"`
	Architectures    []specs.Arch             `json:"architectures,omitempty"`
	ArchMap          []SeccompArchMap         `json:"archMap,omitempty"`
	Syscalls         []SeccompRule            `json:"syscalls,omitempty"`
	Flags            []specs.LinuxSeccompFlag `json:"flags,omitempty"`
	ListenerPath     string                   `json:"listenerPath,omitempty"`
	ListenerMetadata string                   `json:"listenerMetadata,omitempty"`
}

// SeccompArchMap lists the architectures a filter also covers on a host
// of Arch (x86_64 runs x86 and x32 binaries).
type SeccompArchMap struct {
	Arch      specs.Arch   `json:"architecture"`
	SubArches []specs.Arch `json:"subArchitectures"`
}

// SeccompRule is one rule of a profile; Includes and Excludes say when it
// applies.
type SeccompRule struct {
	Name     string                   `json:"name,omitempty"` // deprecated single-name form
	Names    []string                 `json:"names,omitempty"`
	Action   specs.LinuxSeccompAction `json:"action"`
	ErrnoRet *uint                    `json:"errnoRet,omitempty"`
	Args     []specs.LinuxSeccompArg  `json:"args,omitempty"`
	Comment  string                   `json:"comment,omitempty"`
	Includes *SeccompFilter           `json:"includes,omitempty"`
	Excludes *SeccompFilter           `json:"excludes,omitempty"`
}

// SeccompFilter matches containers by capabilities (all of them), host
// architecture (Go's names: amd64, x86, x32, arm64…) and kernel version.
type SeccompFilter struct {
	Caps      []string `json:"caps,omitempty"`
	Arches    []string `json:"arches,omitempty"`
	MinKernel string   `json:"minKernel,omitempty"`
}

// ParseSeccompProfile decodes a profile in Docker's format.
func ParseSeccompProfile(data string) (*SeccompProfile, error) {
	var p SeccompProfile
	if err := json.Unmarshal([]byte(data), &p); err != nil {
		return nil, errdefs.New(errdefs.InvalidParameter, "Decoding seccomp profile failed: %v", err)
	}
	return &p, nil
}

var nativeArches = map[string]specs.Arch{
	"amd64": specs.ArchX86_64, "386": specs.ArchX86, "arm64": specs.ArchAARCH64, "arm": specs.ArchARM,
	"ppc64le": specs.ArchPPC64LE, "s390x": specs.ArchS390X, "riscv64": specs.ArchRISCV64,
}

// SeccompSpec resolves the profile for a container holding caps (its
// bounding set), on this host's architecture and kernel.
func SeccompSpec(p *SeccompProfile, caps []string) (*specs.LinuxSeccomp, error) {
	if p.DefaultAction == "" {
		return nil, errdefs.New(errdefs.InvalidParameter, "seccomp profile: defaultAction is missing")
	}
	if len(p.Architectures) > 0 && len(p.ArchMap) > 0 {
		return nil, errdefs.New(errdefs.InvalidParameter, "both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'")
	}
	out := &specs.LinuxSeccomp{
		DefaultAction:    p.DefaultAction,
		DefaultErrnoRet:  p.DefaultErrnoRet,
		Architectures:    p.Architectures,
		Flags:            p.Flags,
		ListenerPath:     p.ListenerPath,
		ListenerMetadata: p.ListenerMetadata,
	}
	goarch := goruntime.GOARCH
	native := nativeArches[goarch]
	for _, am := range p.ArchMap {
		if am.Arch == native {
			out.Architectures = append(append(out.Architectures, am.Arch), am.SubArches...)
		}
	}
	kernel := kernelVersion()
	for i, r := range p.Syscalls {
		if r.Name != "" && len(r.Names) > 0 {
			return nil, errdefs.New(errdefs.InvalidParameter, "seccomp profile: rule %d has both 'name' and 'names'", i)
		}
		names := r.Names
		if r.Name != "" {
			names = []string{r.Name}
		}
		if len(names) == 0 {
			return nil, errdefs.New(errdefs.InvalidParameter, "seccomp profile: rule %d names no syscall", i)
		}
		if r.Excludes != nil && r.Excludes.matchesAny(caps, goarch, kernel) {
			continue
		}
		if r.Includes != nil && !r.Includes.matchesAll(caps, goarch, kernel) {
			continue
		}
		out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{Names: names, Action: r.Action, ErrnoRet: r.ErrnoRet, Args: r.Args})
	}
	return out, nil
}

// matchesAll: every criterion given holds (Includes).
func (f *SeccompFilter) matchesAll(caps []string, arch string, kernel [2]int) bool {
	for _, c := range f.Caps {
		if !slices.Contains(caps, c) {
			return false
		}
	}
	if len(f.Arches) > 0 && !slices.Contains(f.Arches, arch) {
		return false
	}
	return f.MinKernel == "" || !kernelBelow(kernel, f.MinKernel)
}

// matchesAny: one of the criteria given holds (Excludes).
func (f *SeccompFilter) matchesAny(caps []string, arch string, kernel [2]int) bool {
	for _, c := range f.Caps {
		if slices.Contains(caps, c) {
			return true
		}
	}
	if slices.Contains(f.Arches, arch) {
		return true
	}
	return f.MinKernel != "" && !kernelBelow(kernel, f.MinKernel)
}

func kernelBelow(k [2]int, min string) bool {
	maj, rest, _ := strings.Cut(min, ".")
	a, _ := strconv.Atoi(maj)
	b, _ := strconv.Atoi(rest)
	return k[0] < a || (k[0] == a && k[1] < b)
}

// kernelVersion is the running kernel's major and minor version.
func kernelVersion() [2]int {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return [2]int{}
	}
	rel := unix.ByteSliceToString(u.Release[:])
	maj, rest, _ := strings.Cut(rel, ".")
	minS, _, _ := strings.Cut(rest, ".")
	a, _ := strconv.Atoi(maj)
	b, _ := strconv.Atoi(strings.TrimRightFunc(minS, func(r rune) bool { return r < '0' || r > '9' }))
	return [2]int{a, b}
}

// seccompFor is the container's filter: none when privileged or
// unconfined, else the profile given with --security-opt or Docker's
// default, resolved for the container's capabilities.
func seccompFor(so *SecurityOpts, privileged bool, caps []string) (*specs.LinuxSeccomp, error) {
	if privileged || so.SeccompUnconfined {
		return nil, nil
	}
	p := DefaultSeccompProfile()
	if so.SeccompProfile != "" {
		var err error
		if p, err = ParseSeccompProfile(so.SeccompProfile); err != nil {
			return nil, err
		}
	}
	return SeccompSpec(p, caps)
}

// SecurityOpts are HostConfig.SecurityOpt, parsed.
type SecurityOpts struct {
	NoNewPrivileges   bool
	SeccompUnconfined bool
	SeccompProfile    string // JSON in Docker's format ("" = default)
	AppArmorProfile   string
	SystemPathsUnconf bool // systempaths=unconfined: no masked or read-only paths
}

// ParseSecurityOpt reads Docker's --security-opt values: no-new-privileges
// (also =true|false), seccomp=unconfined|<profile JSON>, apparmor=,
// label= (SELinux, accepted and ignored: berth has no SELinux support) and
// systempaths=unconfined. "key:value" is Docker's deprecated spelling.
func ParseSecurityOpt(opts []string) (*SecurityOpts, error) {
	so := &SecurityOpts{}
	for _, opt := range opts {
		if opt == "no-new-privileges" {
			so.NoNewPrivileges = true
			continue
		}
		if opt == "disable" { // label=disable's old spelling
			continue
		}
		sep := "="
		if !strings.Contains(opt, "=") {
			sep = ":"
		}
		k, v, ok := strings.Cut(opt, sep)
		if !ok {
			return nil, errdefs.New(errdefs.InvalidParameter, "invalid --security-opt 1: %q", opt)
		}
		switch k {
		case "label":
		case "apparmor":
			so.AppArmorProfile = v
		case "seccomp":
			if v == "unconfined" {
				so.SeccompUnconfined = true
			} else {
				so.SeccompProfile = v
			}
		case "no-new-privileges":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, errdefs.New(errdefs.InvalidParameter, "invalid --security-opt 2: %q", opt)
			}
			so.NoNewPrivileges = b
		case "systempaths":
			if v != "unconfined" {
				return nil, errdefs.New(errdefs.InvalidParameter, "invalid --security-opt 2: %q", opt)
			}
			so.SystemPathsUnconf = true
		default:
			return nil, errdefs.New(errdefs.InvalidParameter, "invalid --security-opt 2: %q", opt)
		}
	}
	return so, nil
}

// appArmorEnabled reports whether the host's kernel has AppArmor on; a
// profile asked for on a host without it is ignored, as Docker does.
func appArmorEnabled() bool {
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && strings.HasPrefix(string(b), "Y")
}
