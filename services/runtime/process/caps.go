// Package process prepares the container process itself: capabilities,
// resource limits, user and groups, and the console. Everything here works
// on the calling OS thread (the init locks its main goroutine to the main
// thread and execs from it), so raw per-thread syscalls are used on
// purpose.
package process

import (
	"fmt"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

var capNames = map[string]int{
	"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
	"CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
	"CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
	"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
	"CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
	"CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
	"CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
	"CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
	"CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
	"CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
	"CAP_CHECKPOINT_RESTORE": 40,
}

// CapNames lists the known capability names (for `features`).
func CapNames() []string {
	out := make([]string, len(capNames))
	for n, v := range capNames {
		out[v] = n
	}
	return out
}

// LastCap is the highest capability the kernel knows.
func LastCap() int {
	b, err := readFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 40
	}
	var n int
	fmt.Sscanf(strings.TrimSpace(b), "%d", &n)
	return n
}

// CapSet is a capability bitmask.
type CapSet uint64

// ParseCaps converts names to a mask; unknown names are an error.
func ParseCaps(names []string) (CapSet, error) {
	var s CapSet
	for _, n := range names {
		v, ok := capNames[strings.ToUpper(n)]
		if !ok {
			return 0, fmt.Errorf("unknown capability %q", n)
		}
		s |= 1 << uint(v)
	}
	return s, nil
}

// Caps is the five sets of the spec.
type Caps struct {
	Bounding, Effective, Inheritable, Permitted, Ambient CapSet
}

// DropBounding drops every capability not in the bounding set.
func (c Caps) DropBounding() error {
	last := LastCap()
	for i := 0; i <= last; i++ {
		if c.Bounding&(1<<uint(i)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(i), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop bounding capability %d: %w", i, err)
		}
	}
	return nil
}

// Apply sets effective, permitted and inheritable, then raises ambient.
func (c Caps) Apply() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	data[0] = unix.CapUserData{Effective: uint32(c.Effective), Permitted: uint32(c.Permitted), Inheritable: uint32(c.Inheritable)}
	data[1] = unix.CapUserData{Effective: uint32(c.Effective >> 32), Permitted: uint32(c.Permitted >> 32), Inheritable: uint32(c.Inheritable >> 32)}
	if _, _, e := unix.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("capset: %w", e)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	for i := 0; i < 64; i++ {
		if c.Ambient&(1<<uint(i)) == 0 {
			continue
		}
		// Ambient needs the cap in permitted and inheritable; the spec
		// allows asking for more, which the kernel refuses: ignore.
		_ = unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(i), 0, 0)
	}
	return nil
}
