package specconv

import (
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/pkg/errdefs"
)

// Docker's limits (daemon/daemon_unix.go).
const (
	minMemory      = 6 << 20 // "to account for overhead during startup"
	DefaultShmSize = 64 << 20
)

func invalid(format string, args ...any) error {
	return errdefs.New(errdefs.InvalidParameter, format, args...)
}

// AdaptHostConfig fills in what Docker's create stores in a new
// container's HostConfig (and inspect shows): swap as large as the memory
// limit on top of it, the 64 MB /dev/shm, the private IPC namespace, the
// json-file log driver. It
// returns Docker's warnings for limits this host cannot apply.
func AdaptHostConfig(hc *container.HostConfig) []string {
	var warnings []string
	if hc.Memory > 0 && hc.MemorySwap == 0 {
		hc.MemorySwap = 2 * hc.Memory
	}
	if hc.Memory > 0 && hc.MemorySwap != -1 && !swapAccounting() {
		warnings = append(warnings, "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.")
		hc.MemorySwap = -1
	}
	if hc.ShmSize == 0 {
		hc.ShmSize = DefaultShmSize
	}
	if hc.PidsLimit != nil && *hc.PidsLimit <= 0 {
		hc.PidsLimit = nil // no limit, or "unlimited": none recorded (dockerd's create)
	}
	if hc.IpcMode == "" {
		hc.IpcMode = container.IPCModePrivate
	}
	// dockerd records the daemon's log driver, which inspect shows
	if hc.LogConfig.Type == "" {
		hc.LogConfig.Type = "json-file"
	}
	if hc.LogConfig.Config == nil {
		hc.LogConfig.Config = map[string]string{}
	}
	if hc.OomKillDisable == nil {
		f := false
		hc.OomKillDisable = &f
	}
	// what applies, as dockerd records it: the default masked and
	// read-only paths, and on cgroup v1 the host's cgroup namespace
	if !hc.Privileged {
		if hc.MaskedPaths == nil {
			hc.MaskedPaths = slices.Clone(MaskedPaths)
		}
		if hc.ReadonlyPaths == nil {
			hc.ReadonlyPaths = slices.Clone(ReadonlyPaths)
		}
	}
	if hc.CgroupnsMode == "" && !CgroupV2() {
		hc.CgroupnsMode = container.CgroupnsModeHost
	}
	return warnings
}

// CgroupV2 tells whether the host's cgroups are the unified hierarchy.
func CgroupV2() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err == nil
}

// swapAccounting reports whether memory+swap can be limited (cgroup v1
// with swap accounting, or a v2 memory controller).
func swapAccounting() bool {
	for _, f := range []string{"/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", "/sys/fs/cgroup/memory.swap.max"} {
		if _, err := os.Stat(f); err == nil {
			return true
		}
	}
	// a v2 host shows memory.swap.max in the cgroups below the root only
	b, err := os.ReadFile("/sys/fs/cgroup/cgroup.subtree_control")
	return err == nil && strings.Contains(string(b), "memory")
}

// ValidateResources checks resource limits the way Docker's create (and,
// with update, `docker update`) does, with Docker's messages.
func ValidateResources(r *container.Resources, update bool) error {
	if r.Memory != 0 && r.Memory < minMemory {
		return invalid("Minimum memory limit allowed is 6MB")
	}
	if r.Memory > 0 && r.MemorySwap > 0 && r.MemorySwap < r.Memory {
		return invalid("Minimum memoryswap limit should be larger than memory limit, see usage")
	}
	if r.Memory == 0 && r.MemorySwap > 0 && !update {
		return invalid("You should always set the Memory limit when using Memoryswap limit, see usage")
	}
	if r.MemorySwappiness != nil && *r.MemorySwappiness != -1 && (*r.MemorySwappiness < 0 || *r.MemorySwappiness > 100) {
		return invalid("Invalid value: %v, valid memory swappiness range is 0-100", *r.MemorySwappiness)
	}
	if r.MemoryReservation > 0 && r.MemoryReservation < minMemory {
		return invalid("Minimum memory reservation allowed is 6MB")
	}
	if r.Memory > 0 && r.MemoryReservation > 0 && r.Memory < r.MemoryReservation {
		return invalid("Minimum memory limit can not be less than memory reservation limit, see usage")
	}
	if r.NanoCPUs > 0 && r.CPUPeriod > 0 {
		return invalid("Conflicting options: Nano CPUs and CPU Period cannot both be set")
	}
	if r.NanoCPUs > 0 && r.CPUQuota > 0 {
		return invalid("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
	}
	if n := int64(goruntime.NumCPU()); r.NanoCPUs < 0 || r.NanoCPUs > n*1e9 {
		return invalid("Range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", n, n)
	}
	if r.CPUShares < 0 {
		return invalid("shares: invalid argument")
	}
	if r.CPUPeriod != 0 && (r.CPUPeriod < 1000 || r.CPUPeriod > 1000000) {
		return invalid("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
	}
	if r.CPUQuota > 0 && r.CPUQuota < 1000 {
		return invalid("CPU cfs quota can not be less than 1ms (i.e. 1000)")
	}
	for _, c := range []struct{ val, what, avail, missing string }{
		{r.CpusetCpus, "cpus", cpusetAvailable("cpuset.cpus"), "Requested CPUs are not available"},
		{r.CpusetMems, "mems", cpusetAvailable("cpuset.mems"), "Requested memory nodes are not available"},
	} {
		if c.val == "" {
			continue
		}
		want, err := ParseCPUList(c.val)
		if err != nil {
			return invalid("Invalid value %s for cpuset %s: %v", c.val, c.what, err)
		}
		have, err := ParseCPUList(c.avail)
		if err != nil {
			continue // the host's list unreadable: leave it to the kernel
		}
		for n := range want {
			if !have[n] {
				return invalid("%s - requested %s, available: %s", c.missing, c.val, c.avail)
			}
		}
	}
	if r.BlkioWeight > 0 && (r.BlkioWeight < 10 || r.BlkioWeight > 1000) {
		return invalid("Range of blkio weight is from 10 to 1000")
	}
	return nil
}

// maxCPUList bounds the numbers of a cpuset list (the kernel's NR_CPUS
// limit), so that "0-2000000000" costs nothing.
const maxCPUList = 8192

// ParseCPUList reads a cpuset list ("0-2,4"); the error reads like
// Docker's ("invalid format: x").
func ParseCPUList(s string) (map[int]bool, error) {
	out := map[int]bool{}
	bad := fmt.Errorf("invalid format: %s", s)
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, bad
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, bad
			}
		}
		if b >= maxCPUList {
			return nil, bad
		}
		for i := a; i <= b; i++ {
			out[i] = true
		}
	}
	return out, nil
}

// cpusetAvailable is the CPUs (or memory nodes) containers may use: the
// root cpuset's (v1) or the effective ones of the v2 root.
func cpusetAvailable(file string) string {
	for _, p := range []string{
		filepath.Join("/sys/fs/cgroup/cpuset", file),
		filepath.Join("/sys/fs/cgroup", file+".effective"),
	} {
		if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) != "" {
			return strings.TrimSpace(string(b))
		}
	}
	if file == "cpuset.mems" {
		return "0"
	}
	return fmt.Sprintf("0-%d", goruntime.NumCPU()-1)
}

// ValidateModes checks the namespace modes and the settings that only
// make sense with some of them (Docker's verifyPlatformContainerSettings).
func ValidateModes(hc *container.HostConfig) error {
	if !hc.IpcMode.Valid() {
		return invalid("invalid IPC mode: %v", hc.IpcMode)
	}
	if !hc.PidMode.Valid() {
		return invalid("invalid PID mode: %v", hc.PidMode)
	}
	if !hc.UTSMode.Valid() {
		return invalid("invalid UTS mode: %v", hc.UTSMode)
	}
	if hc.ShmSize < 0 {
		return invalid("SHM size can not be less than 0")
	}
	if hc.OomScoreAdj < -1000 || hc.OomScoreAdj > 1000 {
		return invalid("Invalid value %d, range for oom score adj is [-1000, 1000]", hc.OomScoreAdj)
	}
	for _, u := range hc.Ulimits {
		if u.Soft > u.Hard {
			return invalid("ulimit soft limit must be less than or equal to hard limit: %d > %d", u.Soft, u.Hard)
		}
		if _, ok := rlimitNames[strings.ToLower(u.Name)]; !ok {
			return invalid("invalid ulimit type: %s", u.Name)
		}
	}
	return nil
}

var rlimitNames = map[string]bool{
	"as": true, "core": true, "cpu": true, "data": true, "fsize": true, "locks": true, "memlock": true, "msgqueue": true,
	"nice": true, "nofile": true, "nproc": true, "rss": true, "rtprio": true, "rttime": true, "sigpending": true, "stack": true,
}

func conflict(msg string) error { return errdefs.New(errdefs.Conflict, "%s", msg) }

// MergeUpdate applies a `docker update` to the container's HostConfig the
// way Docker does: only the limits given change, and the CPU limits of one
// kind (--cpus against period/quota) cannot replace the other's.
func MergeUpdate(hc *container.HostConfig, upd *container.UpdateConfig) error {
	r, cur := upd.Resources, &hc.Resources
	switch {
	case r.NanoCPUs > 0 && cur.CPUPeriod > 0:
		return conflict("Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set")
	case r.NanoCPUs > 0 && cur.CPUQuota > 0:
		return conflict("Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set")
	case r.CPUPeriod > 0 && cur.NanoCPUs > 0:
		return conflict("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set")
	case r.CPUQuota > 0 && cur.NanoCPUs > 0:
		return conflict("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
	}
	if r.Memory != 0 && r.Memory > cur.MemorySwap && r.MemorySwap == 0 {
		return conflict("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time")
	}
	if upd.RestartPolicy.Name != "" && hc.AutoRemove && !upd.RestartPolicy.IsNone() {
		return conflict("Restart policy cannot be updated because AutoRemove is enabled for the container")
	}
	set := func(dst *int64, v int64) {
		if v != 0 {
			*dst = v
		}
	}
	if r.BlkioWeight != 0 {
		cur.BlkioWeight = r.BlkioWeight
	}
	set(&cur.CPUShares, r.CPUShares)
	set(&cur.NanoCPUs, r.NanoCPUs)
	set(&cur.CPUPeriod, r.CPUPeriod)
	set(&cur.CPUQuota, r.CPUQuota)
	set(&cur.CPURealtimePeriod, r.CPURealtimePeriod)
	set(&cur.CPURealtimeRuntime, r.CPURealtimeRuntime)
	if r.CpusetCpus != "" {
		cur.CpusetCpus = r.CpusetCpus
	}
	if r.CpusetMems != "" {
		cur.CpusetMems = r.CpusetMems
	}
	set(&cur.Memory, r.Memory)
	set(&cur.MemorySwap, r.MemorySwap)
	set(&cur.MemoryReservation, r.MemoryReservation)
	if r.PidsLimit != nil {
		// dockerd records 0 for "unlimited", however it was asked for
		v := max(*r.PidsLimit, 0)
		cur.PidsLimit = &v
	}
	if upd.RestartPolicy.Name != "" {
		hc.RestartPolicy = upd.RestartPolicy
	}
	return nil
}

// UpdateResources are the cgroup limits a `docker update` changes on a
// running container: only those it gives (Docker's toContainerdResources).
func UpdateResources(r container.Resources) *specs.LinuxResources {
	out := &specs.LinuxResources{}
	if r.BlkioWeight != 0 {
		w := r.BlkioWeight
		out.BlockIO = &specs.LinuxBlockIO{Weight: &w}
	}
	cpu := &specs.LinuxCPU{Cpus: r.CpusetCpus, Mems: r.CpusetMems}
	if r.CPUShares != 0 {
		v := uint64(r.CPUShares)
		cpu.Shares = &v
	}
	var period uint64
	var quota int64
	if r.NanoCPUs != 0 {
		period = 100000
		quota = r.NanoCPUs * int64(period) / 1e9
	}
	if quota == 0 {
		quota = r.CPUQuota
	}
	if period == 0 {
		period = uint64(r.CPUPeriod)
	}
	cpu.Period, cpu.Quota = &period, &quota
	out.CPU = cpu
	mem := &specs.LinuxMemory{}
	if r.Memory != 0 {
		mem.Limit = i64(r.Memory)
	}
	if r.MemoryReservation != 0 {
		mem.Reservation = i64(r.MemoryReservation)
	}
	if r.MemorySwap > 0 {
		mem.Swap = i64(r.MemorySwap)
	}
	out.Memory = mem
	if r.PidsLimit != nil {
		v := *r.PidsLimit
		if v <= 0 {
			v = -1 // unlimited
		}
		out.Pids = &specs.LinuxPids{Limit: &v}
	}
	return out
}
