// Package v1 drives cgroup v1: one directory per mounted hierarchy
// (cpu, memory, pids, ...), plus the empty cgroup2 hierarchy of a hybrid
// host, which only tracks membership.
package v1

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Unified is the key of a hybrid host's cgroup2 hierarchy.
const Unified = "unified"

// Mounts maps each v1 controller (and "name=..." hierarchies, and the
// hybrid unified hierarchy) to its mount point, from /proc/self/mountinfo.
func Mounts() (map[string]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), " ")
		sep := -1
		for i, fl := range fields {
			if fl == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 >= len(fields) || len(fields) < 5 {
			continue
		}
		fstype, super := fields[sep+1], fields[sep+3]
		mnt := fields[4]
		switch fstype {
		case "cgroup":
			for _, o := range strings.Split(super, ",") {
				if o == "rw" || o == "ro" || o == "relatime" || strings.HasPrefix(o, "release_agent") || o == "clone_children" || o == "xattr" || o == "noprefix" || o == "nosuid" || o == "nodev" || o == "noexec" {
					continue
				}
				if _, ok := out[o]; !ok {
					out[o] = mnt
				}
			}
		case "cgroup2":
			if _, ok := out[Unified]; !ok {
				out[Unified] = mnt
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no cgroup hierarchies mounted")
	}
	return out, nil
}

// Manager is a container's set of v1 cgroup directories.
type Manager struct {
	paths map[string]string
}

// New makes a manager over controller -> directory.
func New(paths map[string]string) *Manager { return &Manager{paths: paths} }

// Paths implements cgroups.Manager.
func (m *Manager) Paths() map[string]string { return m.paths }

// dirs returns the distinct directories (co-mounted controllers share one).
func (m *Manager) dirs() []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range m.paths {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// Entry implements cgroups.Manager: the tasks files of the v1
// hierarchies, and the hybrid host's cgroup2 directory.
func (m *Manager) Entry() ([]string, string) {
	var files []string
	seen := map[string]bool{}
	for key, dir := range m.paths {
		if key == Unified || seen[dir] {
			continue
		}
		seen[dir] = true
		files = append(files, filepath.Join(dir, "tasks"))
	}
	sort.Strings(files)
	return files, m.paths[Unified]
}

// Apply creates every directory and moves pid in.
func (m *Manager) Apply(pid int) error {
	for key, dir := range m.paths {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("cgroup %s: %w", key, err)
		}
		if key == "cpuset" {
			if err := initCpuset(dir); err != nil {
				return err
			}
		}
	}
	if pid <= 0 {
		return nil
	}
	for _, dir := range m.dirs() {
		if err := write(dir, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// initCpuset copies cpus and mems down from the first configured ancestor:
// a fresh v1 cpuset accepts no tasks until both are set.
func initCpuset(dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		if err := fillCpuset(dir, f); err != nil {
			return err
		}
	}
	return nil
}

func fillCpuset(dir, file string) error {
	cur, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(cur)) != "" {
		return nil
	}
	parent := filepath.Dir(dir)
	if err := fillCpuset(parent, file); err != nil {
		return err
	}
	v, err := os.ReadFile(filepath.Join(parent, file))
	if err != nil {
		return err
	}
	return write(dir, file, strings.TrimSpace(string(v)))
}

func write(dir, file, val string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(val), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, file), err)
	}
	return nil
}

func (m *Manager) set(ctrl, file, val string) error {
	dir, ok := m.paths[ctrl]
	if !ok {
		return fmt.Errorf("cgroup controller %s is not mounted", ctrl)
	}
	return write(dir, file, val)
}

// Set writes the v1 resource files.
func (m *Manager) Set(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if mem := r.Memory; mem != nil {
		if mem.Swap != nil {
			if _, err := os.Stat(filepath.Join(m.paths["memory"], "memory.memsw.limit_in_bytes")); err != nil {
				// No swap accounting on this host: the limit cannot be
				// applied (docker and runc drop it the same way).
				m2 := *mem
				m2.Swap = nil
				mem = &m2
			}
		}
		if mem.Limit != nil {
			limit := strconv.FormatInt(*mem.Limit, 10)
			if mem.Swap != nil {
				swap := strconv.FormatInt(*mem.Swap, 10)
				// Raising: memsw first; lowering: limit first.
				if err := m.set("memory", "memory.memsw.limit_in_bytes", swap); err != nil {
					if err := m.set("memory", "memory.limit_in_bytes", limit); err != nil {
						return err
					}
					if err := m.set("memory", "memory.memsw.limit_in_bytes", swap); err != nil {
						return err
					}
				} else if err := m.set("memory", "memory.limit_in_bytes", limit); err != nil {
					return err
				}
			} else if err := m.set("memory", "memory.limit_in_bytes", limit); err != nil {
				return err
			}
		} else if mem.Swap != nil {
			if err := m.set("memory", "memory.memsw.limit_in_bytes", strconv.FormatInt(*mem.Swap, 10)); err != nil {
				return err
			}
		}
		if mem.Reservation != nil {
			if err := m.set("memory", "memory.soft_limit_in_bytes", strconv.FormatInt(*mem.Reservation, 10)); err != nil {
				return err
			}
		}
		if mem.Swappiness != nil && *mem.Swappiness <= 100 {
			if err := m.set("memory", "memory.swappiness", strconv.FormatUint(*mem.Swappiness, 10)); err != nil {
				return err
			}
		}
		if mem.DisableOOMKiller != nil && *mem.DisableOOMKiller {
			if err := m.set("memory", "memory.oom_control", "1"); err != nil {
				return err
			}
		}
	}
	if cpu := r.CPU; cpu != nil {
		if cpu.Shares != nil && *cpu.Shares != 0 {
			if err := m.set("cpu", "cpu.shares", strconv.FormatUint(*cpu.Shares, 10)); err != nil {
				return err
			}
		}
		if cpu.Period != nil && *cpu.Period != 0 {
			if err := m.set("cpu", "cpu.cfs_period_us", strconv.FormatUint(*cpu.Period, 10)); err != nil {
				return err
			}
		}
		if cpu.Quota != nil && *cpu.Quota != 0 {
			if err := m.set("cpu", "cpu.cfs_quota_us", strconv.FormatInt(*cpu.Quota, 10)); err != nil {
				return err
			}
		}
		if cpu.RealtimePeriod != nil && *cpu.RealtimePeriod != 0 {
			if err := m.set("cpu", "cpu.rt_period_us", strconv.FormatUint(*cpu.RealtimePeriod, 10)); err != nil {
				return err
			}
		}
		if cpu.RealtimeRuntime != nil && *cpu.RealtimeRuntime != 0 {
			if err := m.set("cpu", "cpu.rt_runtime_us", strconv.FormatInt(*cpu.RealtimeRuntime, 10)); err != nil {
				return err
			}
		}
		if cpu.Cpus != "" {
			if err := m.set("cpuset", "cpuset.cpus", cpu.Cpus); err != nil {
				return err
			}
		}
		if cpu.Mems != "" {
			if err := m.set("cpuset", "cpuset.mems", cpu.Mems); err != nil {
				return err
			}
		}
	}
	if p := r.Pids; p != nil {
		v := "max"
		if p.Limit != nil && *p.Limit > 0 {
			v = strconv.FormatInt(*p.Limit, 10)
		}
		if err := m.set("pids", "pids.max", v); err != nil {
			return err
		}
	}
	if b := r.BlockIO; b != nil {
		if b.Weight != nil {
			if err := m.set("blkio", "blkio.weight", strconv.FormatUint(uint64(*b.Weight), 10)); err != nil {
				return err
			}
		}
		if b.LeafWeight != nil {
			if err := m.set("blkio", "blkio.leaf_weight", strconv.FormatUint(uint64(*b.LeafWeight), 10)); err != nil {
				return err
			}
		}
		for _, d := range b.WeightDevice {
			if d.Weight != nil {
				if err := m.set("blkio", "blkio.weight_device", fmt.Sprintf("%d:%d %d", d.Major, d.Minor, *d.Weight)); err != nil {
					return err
				}
			}
		}
		for file, list := range map[string][]specs.LinuxThrottleDevice{
			"blkio.throttle.read_bps_device":   b.ThrottleReadBpsDevice,
			"blkio.throttle.write_bps_device":  b.ThrottleWriteBpsDevice,
			"blkio.throttle.read_iops_device":  b.ThrottleReadIOPSDevice,
			"blkio.throttle.write_iops_device": b.ThrottleWriteIOPSDevice,
		} {
			for _, d := range list {
				if err := m.set("blkio", file, fmt.Sprintf("%d:%d %d", d.Major, d.Minor, d.Rate)); err != nil {
					return err
				}
			}
		}
	}
	for _, h := range r.HugepageLimits {
		if err := m.set("hugetlb", "hugetlb."+h.Pagesize+".limit_in_bytes", strconv.FormatUint(h.Limit, 10)); err != nil {
			return err
		}
	}
	if n := r.Network; n != nil {
		if n.ClassID != nil {
			if err := m.set("net_cls", "net_cls.classid", strconv.FormatUint(uint64(*n.ClassID), 10)); err != nil {
				return err
			}
		}
		for _, p := range n.Priorities {
			if err := m.set("net_prio", "net_prio.ifpriomap", fmt.Sprintf("%s %d", p.Name, p.Priority)); err != nil {
				return err
			}
		}
	}
	if r.Devices != nil {
		if err := m.setDevices(r.Devices); err != nil {
			return err
		}
	}
	return nil
}

// DefaultAllowed are the devices every container may use (as runc).
var DefaultAllowed = []string{
	"c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
	"c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm",
	"c *:* m", "b *:* m",
}

// DeviceRule renders an OCI device cgroup rule in v1 syntax.
func DeviceRule(d specs.LinuxDeviceCgroup) string {
	t := d.Type
	if t == "" {
		t = "a"
	}
	maj, min := "*", "*"
	if d.Major != nil {
		maj = strconv.FormatInt(*d.Major, 10)
	}
	if d.Minor != nil {
		min = strconv.FormatInt(*d.Minor, 10)
	}
	acc := d.Access
	if acc == "" {
		acc = "rwm"
	}
	if t == "a" {
		return "a"
	}
	return fmt.Sprintf("%s %s:%s %s", t, maj, min, acc)
}

func (m *Manager) setDevices(rules []specs.LinuxDeviceCgroup) error {
	if _, ok := m.paths["devices"]; !ok {
		return nil
	}
	for _, d := range rules {
		file := "devices.deny"
		if d.Allow {
			file = "devices.allow"
		}
		if err := m.set("devices", file, DeviceRule(d)); err != nil {
			return err
		}
	}
	for _, r := range DefaultAllowed {
		if err := m.set("devices", "devices.allow", r); err != nil {
			return err
		}
	}
	return nil
}

// Freeze implements cgroups.Manager.
func (m *Manager) Freeze(frozen bool) error {
	want := "THAWED"
	if frozen {
		want = "FROZEN"
	}
	if err := m.set("freezer", "freezer.state", want); err != nil {
		return err
	}
	// A task in uninterruptible sleep (I/O on a loaded host) delays the
	// freeze: wait for a while, not for a number of polls.
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		b, err := os.ReadFile(filepath.Join(m.paths["freezer"], "freezer.state"))
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(b)) == want {
			return nil
		}
		time.Sleep(time.Millisecond)
		if i%50 == 49 { // a FREEZING cgroup may need a nudge
			_ = m.set("freezer", "freezer.state", want)
		}
	}
	if frozen { // not left half-frozen
		_ = m.set("freezer", "freezer.state", "THAWED")
	}
	return fmt.Errorf("cgroup did not reach %s", want)
}

// Frozen implements cgroups.Manager.
func (m *Manager) Frozen() bool {
	dir, ok := m.paths["freezer"]
	if !ok {
		return false
	}
	b, err := os.ReadFile(filepath.Join(dir, "freezer.state"))
	return err == nil && strings.TrimSpace(string(b)) != "THAWED"
}

// Pids implements cgroups.Manager.
func (m *Manager) Pids() ([]int, error) {
	for _, key := range []string{"pids", "freezer", "memory", "cpu", "devices"} {
		if dir, ok := m.paths[key]; ok {
			return ReadProcs(dir)
		}
	}
	for _, dir := range m.dirs() {
		return ReadProcs(dir)
	}
	return nil, nil
}

// ReadProcs reads cgroup.procs of dir.
func ReadProcs(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// Destroy removes every directory (retrying briefly while exiting tasks
// leave).
func (m *Manager) Destroy() error {
	var errs []error
	for _, dir := range m.dirs() {
		if err := RemoveDir(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RemoveDir removes a cgroup directory and its children.
func RemoveDir(dir string) error {
	err := os.Remove(dir)
	if err == nil || errors.Is(err, os.ErrNotExist) {
		return nil
	}
	// Child cgroups (made by the container itself) go first.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			_ = RemoveDir(filepath.Join(dir, e.Name()))
		}
	}
	for i := 0; i < 200; i++ {
		err = os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, err)
}
