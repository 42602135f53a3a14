package libct

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/services/runtime/namespaces"
	"berth/services/runtime/process"
	"berth/services/runtime/rootfs"
	"berth/services/runtime/seccomp"
)

// Bundle is a bundle's config.json, checked.
type Bundle struct {
	Spec   *specs.Spec
	Raw    []byte          // the file as read, kept in the state and sent to the init
	Filter *seccomp.Filter // the seccomp profile compiled (nil for none)
}

// LoadSpec reads and validates <bundle>/config.json, and compiles its
// seccomp profile (which checks it).
func LoadSpec(bundle string) (*Bundle, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("config.json not found in bundle %s", bundle)
		}
		return nil, err
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("config.json: malformed: %v", err)
	}
	if err := validateSpec(&s, bundle); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	filter, err := seccomp.Prepare(s.Linux.Seccomp)
	if err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	return &Bundle{Spec: &s, Raw: b, Filter: filter}, nil
}

func validateSpec(s *specs.Spec, bundle string) error {
	major, _, _ := strings.Cut(s.Version, ".")
	if s.Version == "" {
		return errors.New("ociVersion is missing")
	}
	if major != "1" {
		return fmt.Errorf("unsupported ociVersion %q (this runtime implements %s)", s.Version, specs.Version)
	}
	if s.Root == nil || s.Root.Path == "" {
		return errors.New("root.path is missing")
	}
	root := s.Root.Path
	if !filepath.IsAbs(root) {
		root = filepath.Join(bundle, root)
	}
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return fmt.Errorf("rootfs (%s) does not exist", root)
	}
	if s.Process == nil {
		return errors.New("process is missing")
	}
	if err := validateProcess(s.Process); err != nil {
		return err
	}
	if s.Linux == nil {
		return errors.New("linux section is missing")
	}
	l := s.Linux
	if err := namespaces.Validate(l.Namespaces); err != nil {
		return err
	}
	if !namespaces.Has(l.Namespaces, specs.MountNamespace) {
		return errors.New("a mount namespace is required")
	}
	userNS := false
	for _, ns := range l.Namespaces {
		if ns.Type == specs.UserNamespace && ns.Path == "" {
			userNS = true
		}
	}
	if userNS && (len(l.UIDMappings) == 0 || len(l.GIDMappings) == 0) {
		return errors.New("user namespace enabled, but no uid/gid mappings given")
	}
	if !userNS && (len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0) {
		return errors.New("uid/gid mappings given, but no new user namespace")
	}
	if (s.Hostname != "" || s.Domainname != "") && !namespaces.Has(l.Namespaces, specs.UTSNamespace) {
		return errors.New("hostname/domainname need a private UTS namespace")
	}
	if l.RootfsPropagation != "" {
		if _, ok := rootfs.Propagation(l.RootfsPropagation); !ok {
			return fmt.Errorf("invalid rootfsPropagation %q", l.RootfsPropagation)
		}
	}
	for _, m := range s.Mounts {
		if m.Destination == "" {
			return errors.New("mount with an empty destination")
		}
		if err := checkProcMount(m); err != nil {
			return err
		}
	}
	if err := validateSysctls(l.Sysctl, l.Namespaces); err != nil {
		return err
	}
	for _, d := range l.Devices {
		switch d.Type {
		case "c", "b", "u", "p":
		default:
			return fmt.Errorf("device %s: invalid type %q", d.Path, d.Type)
		}
		if !filepath.IsAbs(d.Path) {
			return fmt.Errorf("device path %q is not absolute", d.Path)
		}
	}
	if s.Hooks != nil {
		//lint:ignore SA1019 prestart hooks are deprecated but still in the spec, and runc runs them
		all := [][]specs.Hook{s.Hooks.Prestart, s.Hooks.CreateRuntime, s.Hooks.CreateContainer, s.Hooks.StartContainer, s.Hooks.Poststart, s.Hooks.Poststop}
		for _, hs := range all {
			for _, h := range hs {
				if !filepath.IsAbs(h.Path) {
					return fmt.Errorf("hook path %q is not absolute", h.Path)
				}
			}
		}
	}
	return nil
}

func validateProcess(p *specs.Process) error {
	if len(p.Args) == 0 && p.CommandLine == "" {
		return errors.New("process.args must not be empty")
	}
	if p.Cwd == "" || !filepath.IsAbs(p.Cwd) {
		return fmt.Errorf("process.cwd %q must be an absolute path", p.Cwd)
	}
	for _, kv := range p.Env {
		name, _, ok := strings.Cut(kv, "=")
		switch {
		case !ok:
			return fmt.Errorf("invalid environment variable %q: missing '='", kv)
		case name == "":
			return fmt.Errorf("invalid environment variable %q: name cannot be empty", kv)
		case strings.IndexByte(kv, 0) >= 0:
			return fmt.Errorf("invalid environment variable %q: contains a nul byte", name)
		}
	}
	if c := p.Capabilities; c != nil {
		for _, set := range [][]string{c.Bounding, c.Effective, c.Inheritable, c.Permitted, c.Ambient} {
			if _, err := process.ParseCaps(set); err != nil {
				return err
			}
		}
	}
	if err := process.ValidateRlimits(p.Rlimits); err != nil {
		return err
	}
	return process.CheckAppArmor(p.ApparmorProfile)
}

// ipcSysctls are the sysctls of the IPC namespace (with fs.mqueue.*).
var ipcSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
}

// validateSysctls refuses, as runc does, a sysctl that is not confined to a
// namespace of the container's own: written from inside, it would change
// the host.
func validateSysctls(sysctls map[string]string, nss []specs.LinuxNamespace) error {
	for k := range sysctls {
		name := strings.ReplaceAll(k, "/", ".")
		switch {
		case ipcSysctls[name] || strings.HasPrefix(name, "fs.mqueue."):
			if !namespaces.Has(nss, specs.IPCNamespace) || isHostNS(nss, specs.IPCNamespace, "ipc") {
				return fmt.Errorf("sysctl %q is not allowed in the hosts ipc namespace", k)
			}
		case strings.HasPrefix(name, "net."):
			if !namespaces.Has(nss, specs.NetworkNamespace) || isHostNS(nss, specs.NetworkNamespace, "net") {
				return fmt.Errorf("sysctl %q not allowed in host network namespace", k)
			}
		case name == "kernel.domainname" && namespaces.Has(nss, specs.UTSNamespace) && !isHostNS(nss, specs.UTSNamespace, "uts"):
		case name == "kernel.hostname" && namespaces.Has(nss, specs.UTSNamespace):
			return fmt.Errorf("sysctl %q is not allowed as it conflicts with the OCI %q field", k, "hostname")
		default:
			return fmt.Errorf("sysctl %q is not in a separate kernel namespace", k)
		}
	}
	return nil
}

// isHostNS tells whether the namespace of type t is joined by a path that
// is the runtime's own (the host's) namespace of that kind.
func isHostNS(nss []specs.LinuxNamespace, t specs.LinuxNamespaceType, proc string) bool {
	for _, ns := range nss {
		if ns.Type != t || ns.Path == "" {
			continue
		}
		a, err1 := os.Stat(ns.Path)
		b, err2 := os.Stat("/proc/self/ns/" + proc)
		return err1 == nil && err2 == nil && os.SameFile(a, b)
	}
	return false
}

// procMountable are the files below /proc a mount may cover (what lxcfs
// provides), as runc allows; anything else there could hide or fake the
// kernel's view from the container's own processes' security checks.
var procMountable = map[string]bool{
	"/proc/cpuinfo": true, "/proc/diskstats": true, "/proc/meminfo": true, "/proc/stat": true,
	"/proc/swaps": true, "/proc/uptime": true, "/proc/loadavg": true, "/proc/slabinfo": true,
	"/proc/net/dev": true, "/proc/sys/kernel/ns_last_pid": true,
}

func checkProcMount(m specs.Mount) error {
	dest := filepath.Clean("/" + m.Destination)
	if dest == "/proc" {
		if m.Type != "proc" {
			return fmt.Errorf("%q cannot be mounted because it is not of type proc", m.Destination)
		}
		return nil
	}
	if strings.HasPrefix(dest, "/proc/") && !procMountable[dest] {
		return fmt.Errorf("%q cannot be mounted because it is inside /proc", m.Destination)
	}
	return nil
}
