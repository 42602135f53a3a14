package specconv

import (
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/pkg/errdefs"
)

// ExecProcess builds the OCI process of `docker exec` from the container's
// own (the process of its bundle's config.json), Docker's way: the exec's
// command and terminal; the container's environment recomputed with the
// exec's tty (TERM) and its user's home (HOME), then the exec's entries;
// the exec's working directory, else the container's; the exec's user,
// else the container's, resolved in rootfs; every capability when
// privileged. Rlimits, no_new_privs, OOM score and the rest stay the
// container's.
func ExecProcess(base *specs.Process, c *container.Config, hc *container.HostConfig, e *container.ExecOptions, rootfs string, consoleSize *[2]uint) (*specs.Process, error) {
	if len(e.Cmd) == 0 {
		return nil, errdefs.New(errdefs.InvalidParameter, "No exec command specified")
	}
	if base == nil || c == nil {
		return nil, errdefs.New(errdefs.Conflict, "the container's process is unknown")
	}
	if hc == nil {
		hc = &container.HostConfig{}
	}
	// a deep copy: the caller's base may serve several execs
	var p specs.Process
	if b, err := json.Marshal(base); err != nil {
		return nil, err
	} else if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	p.Args = append([]string(nil), e.Cmd...)
	p.Terminal = e.Tty
	p.ConsoleSize = nil
	if e.Tty && consoleSize != nil && consoleSize[0] > 0 && consoleSize[1] > 0 {
		p.ConsoleSize = &specs.Box{Height: consoleSize[0], Width: consoleSize[1]}
	}
	user := c.User
	if e.User != "" {
		user = e.User
	}
	u, home, err := ResolveUser(rootfs, user, hc.GroupAdd)
	if err != nil {
		return nil, err
	}
	u.Umask = p.User.Umask
	p.User = u
	cc := *c
	cc.Tty = e.Tty
	cc.Env = append(append([]string(nil), c.Env...), e.Env...)
	hostname := c.Hostname
	p.Env = Env(&cc, hostname, home)
	switch {
	case e.WorkingDir != "":
		p.Cwd = e.WorkingDir
	case c.WorkingDir != "":
		p.Cwd = c.WorkingDir
	default:
		p.Cwd = "/"
	}
	if e.Privileged {
		all := boundedCapabilities(AllCapabilities())
		p.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
		p.ApparmorProfile = ""
	}
	return &p, nil
}

// capBits are the capabilities by number.
var capBits = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// boundedCapabilities keeps of caps those in this process's bounding set:
// a process cannot be given more than its runtime has (a host that runs
// berth itself without some capability).
func boundedCapabilities(caps []string) []string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return caps
	}
	var bnd uint64
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			if bnd, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64); err != nil {
				return caps
			}
		}
	}
	out := caps[:0:0]
	for _, c := range caps {
		if i := slices.Index(capBits, c); i < 0 || bnd&(1<<uint(i)) != 0 {
			out = append(out, c)
		}
	}
	return out
}
