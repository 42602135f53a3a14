// Package stats reads a running container's resource usage for
// `docker stats`: CPU, memory, PIDs and block I/O from its cgroups (v1
// controllers, or the unified v2 hierarchy), network I/O from its network
// namespace (/proc/<pid>/net/dev), in the shape of Docker's StatsResponse.
// The supervisor reads the files itself rather than asking the shim: it
// is a read of a few kernel files, and a shim stays as small as it can.
package stats

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"golang.org/x/sys/unix"

	"berth/services/runtime/cgroups"
	v1 "berth/services/runtime/cgroups/v1"
)

// Host is where the files are read: "/" normally, a fake tree in tests.
type Host struct {
	Root string
	// V1 maps each v1 controller to its mount point (relative to Root);
	// nil means a unified v2 hierarchy at sys/fs/cgroup.
	V1 map[string]string
	// MemTotal is the machine's memory: the limit shown for a container
	// without one (as Docker).
	MemTotal uint64
}

func (h *Host) path(p ...string) string { return filepath.Join(append([]string{h.Root}, p...)...) }

// Collect samples the container whose cgroup is cgroupPath (absolute from
// each hierarchy's root, e.g. /berth/<id>) and whose init is pid; netns
// says whether it has a network namespace of its own (else no networks are
// reported, as Docker does for --network host).
func (h *Host) Collect(cgroupPath string, pid int, netns bool) container.StatsResponse {
	var s container.StatsResponse
	s.Read = time.Now().UTC()
	if h.V1 != nil {
		h.v1(&s, cgroupPath)
	} else {
		h.v2(&s, filepath.Join("sys/fs/cgroup", cgroupPath))
	}
	if s.MemoryStats.Limit == 0 || (h.MemTotal > 0 && s.MemoryStats.Limit > h.MemTotal) {
		s.MemoryStats.Limit = h.MemTotal
	}
	s.CPUStats.SystemUsage, s.CPUStats.OnlineCPUs = h.systemCPU()
	if netns && pid > 0 {
		s.Networks = h.networks(pid)
	}
	return s
}

func (h *Host) v1(s *container.StatsResponse, cg string) {
	dir := func(ctrl string) string {
		if mnt, ok := h.V1[ctrl]; ok {
			return h.path(mnt, cg)
		}
		return ""
	}
	if d := dir("cpuacct"); d != "" {
		u := &s.CPUStats.CPUUsage
		u.TotalUsage = readUint(d, "cpuacct.usage")
		u.PercpuUsage = readUints(d, "cpuacct.usage_percpu")
		kv := readKV(d, "cpuacct.stat")
		// cpuacct.stat counts USER_HZ ticks (100 a second)
		u.UsageInUsermode = kv["user"] * uint64(time.Second/100)
		u.UsageInKernelmode = kv["system"] * uint64(time.Second/100)
	}
	if d := dir("cpu"); d != "" {
		kv := readKV(d, "cpu.stat")
		s.CPUStats.ThrottlingData = container.ThrottlingData{Periods: kv["nr_periods"], ThrottledPeriods: kv["nr_throttled"], ThrottledTime: kv["throttled_time"]}
	}
	if d := dir("memory"); d != "" {
		m := &s.MemoryStats
		m.Usage = readUint(d, "memory.usage_in_bytes")
		m.MaxUsage = readUint(d, "memory.max_usage_in_bytes")
		m.Failcnt = readUint(d, "memory.failcnt")
		m.Limit = readUint(d, "memory.limit_in_bytes")
		m.Stats = readKV(d, "memory.stat")
	}
	if d := dir("pids"); d != "" {
		s.PidsStats = container.PidsStats{Current: readUint(d, "pids.current"), Limit: readUint(d, "pids.max")}
	}
	if d := dir("blkio"); d != "" {
		// the CFQ/BFQ files are not there on every kernel; the throttle
		// ones count all I/O (containerd's choice too)
		b := &s.BlkioStats
		b.IoServiceBytesRecursive = readBlkio(d, "blkio.throttle.io_service_bytes_recursive")
		b.IoServicedRecursive = readBlkio(d, "blkio.throttle.io_serviced_recursive")
	}
}

func (h *Host) v2(s *container.StatsResponse, rel string) {
	d := h.path(rel)
	kv := readKV(d, "cpu.stat")
	us := uint64(time.Microsecond)
	s.CPUStats.CPUUsage = container.CPUUsage{TotalUsage: kv["usage_usec"] * us, UsageInUsermode: kv["user_usec"] * us, UsageInKernelmode: kv["system_usec"] * us}
	s.CPUStats.ThrottlingData = container.ThrottlingData{Periods: kv["nr_periods"], ThrottledPeriods: kv["nr_throttled"], ThrottledTime: kv["throttled_usec"] * us}
	m := &s.MemoryStats
	m.Usage = readUint(d, "memory.current")
	m.Limit = readUint(d, "memory.max")
	m.Stats = readKV(d, "memory.stat")
	s.PidsStats = container.PidsStats{Current: readUint(d, "pids.current"), Limit: readUint(d, "pids.max")}
	// io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0"
	b := &s.BlkioStats
	for _, line := range lines(d, "io.stat") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		maj, min, ok := majMin(f[0])
		if !ok {
			continue
		}
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseUint(v, 10, 64)
			e := container.BlkioStatEntry{Major: maj, Minor: min, Value: n}
			switch k {
			case "rbytes", "wbytes":
				e.Op = map[string]string{"rbytes": "read", "wbytes": "write"}[k]
				b.IoServiceBytesRecursive = append(b.IoServiceBytesRecursive, e)
			case "rios", "wios":
				e.Op = map[string]string{"rios": "read", "wios": "write"}[k]
				b.IoServicedRecursive = append(b.IoServicedRecursive, e)
			}
		}
	}
}

// systemCPU is the host's CPU time in nanoseconds (the first seven fields
// of /proc/stat's cpu line, as Docker adds them) and its online CPUs.
func (h *Host) systemCPU() (uint64, uint32) {
	var total uint64
	var online uint32
	for _, line := range lines(h.path("proc"), "stat") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		if f[0] != "cpu" {
			online++
			continue
		}
		for _, v := range f[1:min(8, len(f))] {
			n, _ := strconv.ParseUint(v, 10, 64)
			total += n
		}
	}
	return total * uint64(time.Second/100), online
}

// networks reads the interfaces of pid's network namespace but lo, which
// Docker does not report.
func (h *Host) networks(pid int) map[string]container.NetworkStats {
	out := map[string]container.NetworkStats{}
	for _, line := range lines(h.path("proc", strconv.Itoa(pid), "net"), "dev") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		f := strings.Fields(rest)
		if name == "lo" || len(f) < 12 {
			continue
		}
		n := make([]uint64, 12)
		for i := range n {
			n[i], _ = strconv.ParseUint(f[i], 10, 64)
		}
		// rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets errs drop …
		out[name] = container.NetworkStats{RxBytes: n[0], RxPackets: n[1], RxErrors: n[2], RxDropped: n[3],
			TxBytes: n[8], TxPackets: n[9], TxErrors: n[10], TxDropped: n[11]}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func lines(dir, file string) []string {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return nil
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// readUint reads a one-number file; "max" (no limit) and errors are 0.
func readUint(dir, file string) uint64 {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

func readUints(dir, file string) []uint64 {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return nil
	}
	var out []uint64
	for _, f := range strings.Fields(string(b)) {
		n, _ := strconv.ParseUint(f, 10, 64)
		out = append(out, n)
	}
	return out
}

// readKV reads "key value" lines.
func readKV(dir, file string) map[string]uint64 {
	out := map[string]uint64{}
	for _, l := range lines(dir, file) {
		if k, v, ok := strings.Cut(l, " "); ok {
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
				out[k] = n
			}
		}
	}
	return out
}

// readBlkio reads v1 "8:0 Read 4096" lines (the closing "Total N" line,
// which names no device, is skipped).
func readBlkio(dir, file string) []container.BlkioStatEntry {
	out := []container.BlkioStatEntry{}
	for _, l := range lines(dir, file) {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		maj, min, ok := majMin(f[0])
		if !ok {
			continue
		}
		n, _ := strconv.ParseUint(f[2], 10, 64)
		out = append(out, container.BlkioStatEntry{Major: maj, Minor: min, Op: f[1], Value: n})
	}
	return out
}

func majMin(s string) (uint64, uint64, bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, false
	}
	maj, err1 := strconv.ParseUint(a, 10, 64)
	min, err2 := strconv.ParseUint(b, 10, 64)
	return maj, min, err1 == nil && err2 == nil
}

// NewHost describes this machine: its cgroup hierarchies and memory.
func NewHost() *Host {
	h := &Host{Root: "/"}
	if !cgroups.IsV2() {
		if mounts, err := v1.Mounts(); err == nil {
			h.V1 = map[string]string{}
			for ctrl, mnt := range mounts {
				if ctrl != v1.Unified {
					h.V1[ctrl] = mnt
				}
			}
		}
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		h.MemTotal = uint64(si.Totalram) * uint64(si.Unit)
	}
	return h
}
