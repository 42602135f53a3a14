package specconv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
)

// Options are the inputs of Spec.
type Options struct {
	ID         string
	Config     *container.Config     // merged with the image config (see Merge)
	HostConfig *container.HostConfig // may be nil
	// Rootfs is the container's root filesystem on the host, used to
	// resolve user and group names; spec.Root.Path is "rootfs" (relative
	// to the bundle) unless RootPath is set.
	Rootfs   string
	RootPath string
	// EtcFiles are host files bind-mounted over /etc/hostname, /etc/hosts
	// and /etc/resolv.conf (destination → source), as Docker does.
	EtcFiles map[string]string
	// Mounts are the container's binds, volumes and tmpfs mounts (see
	// ParseMounts), volume sources resolved; HostConfig.Binds and Mounts
	// themselves are not read.
	Mounts []dockermsg.MountPoint
	// NetNSPath is a network namespace to join (a sandbox's, or another
	// container's); empty makes a new one (none with --network host).
	NetNSPath string
	// NamespacePaths are namespaces joined instead of made (--pid and
	// --ipc container:X): /proc/<pid>/ns/<type> of the other container's
	// init, which the supervisor resolves at start.
	NamespacePaths map[specs.LinuxNamespaceType]string
	// ShmPath is a host directory bind-mounted on /dev/shm: the tmpfs of a
	// shareable IPC namespace, the donor's for --ipc container:X, the
	// host's /dev/shm for --ipc host. Empty: a tmpfs of the container's own.
	ShmPath string
	// UIDMappings and GIDMappings, when set, put the container in a user
	// namespace of its own (the supervisor's --userns-remap).
	UIDMappings, GIDMappings []specs.LinuxIDMapping
	// InitPath is the host's init binary for HostConfig.Init (--init).
	InitPath string
}

// DefaultCapabilities are Docker's default capabilities.
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
		"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
	}
}

// AllCapabilities are the capabilities a privileged container gets.
func AllCapabilities() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
		"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
		"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
		"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
		"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
		"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
		"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
		"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
		"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
	}
}

// MaskedPaths and ReadonlyPaths are Docker's defaults.
var (
	MaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	ReadonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

func i64(v int64) *int64 { return &v }

// DefaultNoFile is Docker's RLIMIT_NOFILE for containers.
const DefaultNoFile = 1048576

// NoFileLimit is DefaultNoFile, lowered to this process's hard limit when
// the process cannot raise it (no CAP_SYS_RESOURCE): the runtime could not
// set a higher one either.
func NoFileLimit() uint64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Max >= DefaultNoFile || hasCapSysResource() {
		return DefaultNoFile
	}
	return rl.Max
}

func hasCapSysResource() bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err != nil || n&(1<<unix.CAP_SYS_RESOURCE) != 0
		}
	}
	return true
}

func defaultDevices() []specs.LinuxDeviceCgroup {
	dev := func(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
		d := specs.LinuxDeviceCgroup{Allow: true, Type: typ, Access: access}
		if major >= 0 {
			d.Major = i64(major)
		}
		if minor >= 0 {
			d.Minor = i64(minor)
		}
		return d
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		dev("c", -1, -1, "m"),
		dev("b", -1, -1, "m"),
		dev("c", 1, 3, "rwm"),    // /dev/null
		dev("c", 1, 8, "rwm"),    // /dev/random
		dev("c", 1, 7, "rwm"),    // /dev/full
		dev("c", 5, 0, "rwm"),    // /dev/tty
		dev("c", 1, 5, "rwm"),    // /dev/zero
		dev("c", 1, 9, "rwm"),    // /dev/urandom
		dev("c", 136, -1, "rwm"), // /dev/pts/*
		dev("c", 5, 2, "rwm"),    // /dev/ptmx
		dev("c", 10, 200, "rwm"), // /dev/net/tun
	}
}

// Spec builds the OCI runtime spec for a container.
func Spec(o Options) (*specs.Spec, error) {
	c := o.Config
	if c == nil {
		return nil, errdefs.New(errdefs.InvalidParameter, "config cannot be empty in order to create a container")
	}
	hc := o.HostConfig
	if hc == nil {
		hc = &container.HostConfig{}
	}
	args := Args(c)
	if len(args) == 0 {
		return nil, errdefs.New(errdefs.InvalidParameter, "no command specified")
	}
	user, home, err := ResolveUser(o.Rootfs, c.User, hc.GroupAdd)
	if err != nil {
		return nil, err
	}
	hostname := c.Hostname
	if hostname == "" && len(o.ID) >= 12 {
		hostname = o.ID[:12]
	}
	if err := ValidateModes(hc); err != nil {
		return nil, err
	}
	cwd := c.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	if !filepath.IsAbs(cwd) {
		return nil, errdefs.New(errdefs.InvalidParameter, "the working directory '%s' is invalid, it needs to be an absolute path", cwd)
	}
	rootPath := o.RootPath
	if rootPath == "" {
		rootPath = "rootfs"
	}

	specHostname, specDomainname := hostname, c.Domainname
	if hc.UTSMode.IsHost() {
		// the host's: they cannot be set without a UTS namespace
		specHostname, specDomainname = "", ""
	}
	s := &specs.Spec{
		Version:    specs.Version,
		Hostname:   specHostname,
		Domainname: specDomainname,
		Root:       &specs.Root{Path: rootPath, Readonly: hc.ReadonlyRootfs},
		Process: &specs.Process{
			Terminal: c.Tty,
			User:     user,
			Args:     args,
			Env:      Env(c, hostname, home),
			Cwd:      filepath.Clean(cwd),
			Rlimits: []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Hard: NoFileLimit(), Soft: NoFileLimit()},
			},
		},
		Mounts:      defaultMounts(hc, o.ShmPath),
		Annotations: map[string]string{},
		Linux: &specs.Linux{
			CgroupsPath: "/berth/" + o.ID,
			Namespaces:  namespaces(hc, o.NetNSPath, o.NamespacePaths),
			UIDMappings: o.UIDMappings,
			GIDMappings: o.GIDMappings,
			Resources:   &specs.LinuxResources{Devices: defaultDevices()},
			Sysctl:      map[string]string{},
		},
	}
	for k, v := range c.Labels {
		s.Annotations[k] = v
	}
	if c.Tty {
		s.Process.ConsoleSize = &specs.Box{Height: 24, Width: 80}
		if hc.ConsoleSize[0] > 0 && hc.ConsoleSize[1] > 0 {
			s.Process.ConsoleSize = &specs.Box{Height: hc.ConsoleSize[0], Width: hc.ConsoleSize[1]}
		}
	}
	if p := o.NamespacePaths[specs.UserNamespace]; p != "" || len(o.UIDMappings) > 0 {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: p})
	}
	if err := applySecurity(s, hc); err != nil {
		return nil, err
	}
	if hc.OomScoreAdj != 0 {
		v := hc.OomScoreAdj
		s.Process.OOMScoreAdj = &v
	}
	for k, v := range hc.Sysctls {
		s.Linux.Sysctl[k] = v
	}
	for _, u := range hc.Ulimits {
		name := "RLIMIT_" + strings.ToUpper(u.Name)
		replaced := false
		for i := range s.Process.Rlimits {
			if s.Process.Rlimits[i].Type == name {
				s.Process.Rlimits[i] = specs.POSIXRlimit{Type: name, Hard: uint64(u.Hard), Soft: uint64(u.Soft)}
				replaced = true
			}
		}
		if !replaced {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: name, Hard: uint64(u.Hard), Soft: uint64(u.Soft)})
		}
	}
	resources(s.Linux.Resources, hc)
	for _, dst := range []string{"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"} {
		if src := o.EtcFiles[dst]; src != "" {
			opts := []string{"rbind", "rprivate"}
			if hc.ReadonlyRootfs {
				opts = append(opts, "ro")
			}
			s.Mounts = append(s.Mounts, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts})
		}
	}
	mounts, rootProp, err := userMounts(hc, o.Mounts)
	if err != nil {
		return nil, err
	}
	s.Mounts = overrideMounts(s.Mounts, mounts)
	s.Linux.RootfsPropagation = rootProp
	if hc.Init != nil && *hc.Init {
		if err := applyInit(s, o.InitPath); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Env is the process environment, Docker's way: PATH (unless the config
// sets it), HOSTNAME, TERM=xterm with a tty, then the config's entries
// (which replace earlier ones of the same name), HOME last if still unset.
func Env(c *container.Config, hostname, home string) []string {
	var env []string
	hasPath := false
	for _, e := range c.Env {
		if strings.HasPrefix(e, "PATH=") {
			hasPath = true
		}
	}
	if !hasPath {
		env = append(env, "PATH="+DefaultPath)
	}
	env = append(env, "HOSTNAME="+hostname)
	if c.Tty {
		env = append(env, "TERM=xterm")
	}
	for _, e := range c.Env {
		k, _, hasEq := strings.Cut(e, "=")
		if !hasEq {
			// "FOO" without a value: Docker takes it from the client's
			// environment; here it unsets an earlier default.
			env = removeEnv(env, k)
			continue
		}
		env = removeEnv(env, k)
		env = append(env, e)
	}
	hasHome := false
	for _, e := range env {
		if strings.HasPrefix(e, "HOME=") {
			hasHome = true
		}
	}
	if !hasHome && home != "" {
		env = append(env, "HOME="+home)
	}
	return env
}

func removeEnv(env []string, k string) []string {
	out := env[:0]
	for _, e := range env {
		if ek, _, _ := strings.Cut(e, "="); ek != k {
			out = append(out, e)
		}
	}
	return out
}

func namespaces(hc *container.HostConfig, netns string, paths map[specs.LinuxNamespaceType]string) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	if !hc.PidMode.IsHost() {
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: paths[specs.PIDNamespace]})
	}
	if !hc.IpcMode.IsHost() {
		ns = append(ns, specs.LinuxNamespace{Type: specs.IPCNamespace, Path: paths[specs.IPCNamespace]})
	}
	if !hc.UTSMode.IsHost() {
		ns = append(ns, specs.LinuxNamespace{Type: specs.UTSNamespace})
	}
	if netns != "" || (!hc.NetworkMode.IsHost() && !hc.NetworkMode.IsContainer()) {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: netns})
	}
	if hc.CgroupnsMode.IsPrivate() {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return ns
}

func defaultMounts(hc *container.HostConfig, shmPath string) []specs.Mount {
	shmSize := hc.ShmSize
	if shmSize <= 0 {
		shmSize = 64 << 20
	}
	sysOpts := []string{"nosuid", "noexec", "nodev", "ro"}
	cgOpts := []string{"ro", "nosuid", "noexec", "nodev"}
	if hc.Privileged {
		sysOpts = []string{"nosuid", "noexec", "nodev"}
		cgOpts = []string{"nosuid", "noexec", "nodev"}
	}
	shm := specs.Mount{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", fmt.Sprintf("size=%d", shmSize)}}
	if shmPath != "" {
		shm = specs.Mount{Destination: "/dev/shm", Type: "bind", Source: shmPath, Options: []string{"rbind", "nosuid", "noexec", "nodev"}}
	}
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: sysOpts},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: cgOpts},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
	}
	if hc.IpcMode != container.IPCModeNone {
		mounts = append(mounts, shm)
	}
	return mounts
}

// userMounts are the container's mount points (binds, volumes, tmpfs
// mounts) and HostConfig.Tmpfs, with the root propagation they need.
func userMounts(hc *container.HostConfig, mps []dockermsg.MountPoint) ([]specs.Mount, string, error) {
	out, rootProp, err := specMounts(mps)
	if err != nil {
		return nil, "", err
	}
	for dst, o := range hc.Tmpfs {
		if !filepath.IsAbs(dst) {
			return nil, "", errdefs.New(errdefs.InvalidParameter, "invalid tmpfs destination %q", dst)
		}
		opts := []string{"nosuid", "nodev", "noexec"}
		if o != "" {
			opts = append(opts, strings.Split(o, ",")...)
		}
		out = append(out, specs.Mount{Destination: filepath.Clean(dst), Type: "tmpfs", Source: "tmpfs", Options: opts})
	}
	return out, rootProp, nil
}

// overrideMounts appends user mounts, dropping defaults they replace.
func overrideMounts(defaults, user []specs.Mount) []specs.Mount {
	if len(user) == 0 {
		return defaults
	}
	var out []specs.Mount
	for _, d := range defaults {
		keep := true
		for _, u := range user {
			if u.Destination == d.Destination {
				keep = false
			}
		}
		if keep {
			out = append(out, d)
		}
	}
	return append(out, user...)
}

func resources(r *specs.LinuxResources, hc *container.HostConfig) {
	res := hc.Resources
	if res.Memory > 0 || res.MemoryReservation > 0 || res.MemorySwap != 0 || res.KernelMemory > 0 || (res.OomKillDisable != nil && *res.OomKillDisable) || res.MemorySwappiness != nil {
		m := &specs.LinuxMemory{}
		if res.Memory > 0 {
			m.Limit = i64(res.Memory)
			swap := res.MemorySwap
			if swap == 0 {
				swap = 2 * res.Memory // Docker's default: as much swap as memory
			}
			m.Swap = i64(swap)
		}
		if res.MemoryReservation > 0 {
			m.Reservation = i64(res.MemoryReservation)
		}
		if res.OomKillDisable != nil && *res.OomKillDisable {
			t := true
			m.DisableOOMKiller = &t
		}
		if res.MemorySwappiness != nil && *res.MemorySwappiness >= 0 {
			v := uint64(*res.MemorySwappiness)
			m.Swappiness = &v
		}
		r.Memory = m
	}
	if res.CPUShares > 0 || res.CPUQuota > 0 || res.CPUPeriod > 0 || res.NanoCPUs > 0 || res.CpusetCpus != "" || res.CpusetMems != "" {
		c := &specs.LinuxCPU{Cpus: res.CpusetCpus, Mems: res.CpusetMems}
		if res.CPUShares > 0 {
			v := uint64(res.CPUShares)
			c.Shares = &v
		}
		if res.NanoCPUs > 0 {
			period := uint64(100000)
			c.Period = &period
			q := res.NanoCPUs * int64(period) / 1e9
			c.Quota = &q
		} else {
			if res.CPUPeriod > 0 {
				v := uint64(res.CPUPeriod)
				c.Period = &v
			}
			if res.CPUQuota > 0 {
				v := res.CPUQuota
				c.Quota = &v
			}
		}
		r.CPU = c
	}
	if res.PidsLimit != nil && *res.PidsLimit != 0 {
		r.Pids = &specs.LinuxPids{Limit: i64(*res.PidsLimit)}
	}
	if res.BlkioWeight > 0 {
		w := res.BlkioWeight
		r.BlockIO = &specs.LinuxBlockIO{Weight: &w}
	}
}

// DNS is what docker run's --dns, --dns-search and --dns-option ask for.
type DNS struct{ Servers, Search, Options []string }

// DNSOf is hc's DNS settings.
func DNSOf(hc *container.HostConfig) DNS {
	return DNS{Servers: hc.DNS, Search: hc.DNSSearch, Options: hc.DNSOptions}
}

// defaultServers are Docker's name servers for a container left with none.
var defaultServers = []string{"8.8.8.8", "8.8.4.4"}

// ResolvConf derives a container's /etc/resolv.conf from the host's, as
// Docker does: in a network namespace of its own, loopback name servers
// are useless, so they are dropped (Google's public servers used when none
// is left). With --dns, --dns-search or --dns-option, the file is rebuilt:
// each given list replaces the host's (a search of "." means none).
func ResolvConf(host []byte, hostNetwork bool, dns DNS) string {
	var servers, search, options []string
	for _, line := range strings.Split(string(host), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if hostNetwork || !(strings.HasPrefix(f[1], "127.") || f[1] == "::1") {
				servers = append(servers, f[1])
			}
		case "search", "domain":
			search = f[1:]
		case "options":
			options = append(options, f[1:]...)
		}
	}
	if len(dns.Servers)+len(dns.Search)+len(dns.Options) == 0 {
		return hostResolvConf(host, hostNetwork, len(servers) > 0)
	}
	if len(dns.Servers) > 0 {
		servers = dns.Servers
	} else if len(servers) == 0 {
		servers = defaultServers
	}
	if len(dns.Search) > 0 {
		search = dns.Search
	}
	if len(dns.Options) > 0 {
		options = dns.Options
	}
	var b strings.Builder
	if s := strings.Join(search, " "); len(search) > 0 && strings.TrimSpace(s) != "." {
		b.WriteString("search " + s + "\n")
	}
	for _, s := range servers {
		b.WriteString("nameserver " + s + "\n")
	}
	if len(options) > 0 {
		b.WriteString("options " + strings.Join(options, " ") + "\n")
	}
	return b.String()
}

// hostResolvConf is the host's file, kept line for line (its comments
// too), less its loopback servers in a namespace of its own.
func hostResolvConf(host []byte, hostNetwork, haveServers bool) string {
	if hostNetwork {
		return string(host)
	}
	var out []string
	for _, line := range strings.Split(string(host), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" && (strings.HasPrefix(f[1], "127.") || f[1] == "::1") {
			continue
		}
		out = append(out, line)
	}
	res := strings.TrimRight(strings.Join(out, "\n"), "\n") + "\n"
	if !haveServers {
		res += "nameserver " + strings.Join(defaultServers, "\nnameserver ") + "\n"
	}
	return strings.TrimLeft(res, "\n")
}
