// Package v2 drives the unified cgroup v2 hierarchy: one directory, the
// limits written to the v2 interface files (memory.max, cpu.max, io.max...)
// and device rules as an eBPF program attached to it.
package v2

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Manager is one v2 cgroup directory.
type Manager struct {
	dir string
}

// New makes a manager for dir (which need not exist yet).
func New(dir string) *Manager { return &Manager{dir: dir} }

// Paths implements cgroups.Manager.
func (m *Manager) Paths() map[string]string { return map[string]string{"": m.dir} }

// Entry implements cgroups.Manager: clone straight into the directory.
func (m *Manager) Entry() ([]string, string) { return nil, m.dir }

// Apply creates the directory, enables the parent's controllers for it
// (best effort) and moves pid in.
func (m *Manager) Apply(pid int) error {
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return err
	}
	parent := filepath.Dir(m.dir)
	if b, err := os.ReadFile(filepath.Join(parent, "cgroup.controllers")); err == nil {
		for _, c := range strings.Fields(string(b)) {
			_ = os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+"+c), 0o644)
		}
	}
	if pid <= 0 {
		return nil
	}
	return m.write("cgroup.procs", strconv.Itoa(pid))
}

func (m *Manager) write(file, val string) error {
	if err := os.WriteFile(filepath.Join(m.dir, file), []byte(val), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(m.dir, file), err)
	}
	return nil
}

// SharesToWeight converts cgroup v1 cpu.shares to v2 cpu.weight (as runc).
func SharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	return 1 + ((shares-2)*9999)/262142
}

func limit(v int64) string {
	if v < 0 {
		return "max"
	}
	return strconv.FormatInt(v, 10)
}

// Set writes the v2 interface files.
func (m *Manager) Set(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if mem := r.Memory; mem != nil {
		if mem.Limit != nil {
			if err := m.write("memory.max", limit(*mem.Limit)); err != nil {
				return err
			}
		}
		if mem.Swap != nil {
			// OCI swap is memory+swap; v2 counts swap alone.
			v := "max"
			if *mem.Swap >= 0 {
				s := *mem.Swap
				if mem.Limit != nil && *mem.Limit > 0 {
					s -= *mem.Limit
				}
				if s < 0 {
					return fmt.Errorf("memory+swap limit %d is lower than the memory limit", *mem.Swap)
				}
				v = strconv.FormatInt(s, 10)
			}
			if err := m.write("memory.swap.max", v); err != nil {
				return err
			}
		}
		if mem.Reservation != nil {
			if err := m.write("memory.low", limit(*mem.Reservation)); err != nil {
				return err
			}
		}
	}
	if cpu := r.CPU; cpu != nil {
		if cpu.Shares != nil && *cpu.Shares != 0 {
			if err := m.write("cpu.weight", strconv.FormatUint(SharesToWeight(*cpu.Shares), 10)); err != nil {
				return err
			}
		}
		if (cpu.Quota != nil && *cpu.Quota != 0) || (cpu.Period != nil && *cpu.Period != 0) {
			q := "max"
			if cpu.Quota != nil && *cpu.Quota > 0 {
				q = strconv.FormatInt(*cpu.Quota, 10)
			}
			period := uint64(100000)
			if cpu.Period != nil && *cpu.Period != 0 {
				period = *cpu.Period
			}
			if err := m.write("cpu.max", fmt.Sprintf("%s %d", q, period)); err != nil {
				return err
			}
		}
		if cpu.Cpus != "" {
			if err := m.write("cpuset.cpus", cpu.Cpus); err != nil {
				return err
			}
		}
		if cpu.Mems != "" {
			if err := m.write("cpuset.mems", cpu.Mems); err != nil {
				return err
			}
		}
	}
	if p := r.Pids; p != nil {
		v := "max"
		if p.Limit != nil && *p.Limit > 0 {
			v = strconv.FormatInt(*p.Limit, 10)
		}
		if err := m.write("pids.max", v); err != nil {
			return err
		}
	}
	if b := r.BlockIO; b != nil {
		if b.Weight != nil {
			// blkio weight 10..1000 -> io weight 1..10000
			w := 1 + (uint64(*b.Weight)-10)*9999/990
			if err := m.write("io.weight", strconv.FormatUint(w, 10)); err != nil {
				return err
			}
		}
		for key, list := range map[string][]specs.LinuxThrottleDevice{
			"rbps": b.ThrottleReadBpsDevice, "wbps": b.ThrottleWriteBpsDevice,
			"riops": b.ThrottleReadIOPSDevice, "wiops": b.ThrottleWriteIOPSDevice,
		} {
			for _, d := range list {
				if err := m.write("io.max", fmt.Sprintf("%d:%d %s=%d", d.Major, d.Minor, key, d.Rate)); err != nil {
					return err
				}
			}
		}
	}
	for _, h := range r.HugepageLimits {
		if err := m.write("hugetlb."+h.Pagesize+".max", strconv.FormatUint(h.Limit, 10)); err != nil {
			return err
		}
	}
	if r.Devices != nil {
		if err := m.setDevices(r.Devices); err != nil {
			return err
		}
	}
	for k, v := range r.Unified {
		if strings.Contains(k, "/") || strings.HasPrefix(k, ".") {
			return fmt.Errorf("invalid unified key %q", k)
		}
		if err := m.write(k, v); err != nil {
			return err
		}
	}
	return nil
}

// Freeze implements cgroups.Manager.
func (m *Manager) Freeze(frozen bool) error {
	v := "0"
	if frozen {
		v = "1"
	}
	if err := m.write("cgroup.freeze", v); err != nil {
		return err
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if m.Frozen() == frozen {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	if frozen { // not left half-frozen
		_ = m.write("cgroup.freeze", "0")
	}
	return errors.New("cgroup did not reach the freezer state")
}

// Frozen implements cgroups.Manager.
func (m *Manager) Frozen() bool {
	b, err := os.ReadFile(filepath.Join(m.dir, "cgroup.events"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "frozen 1" {
			return true
		}
	}
	return false
}

// Pids implements cgroups.Manager.
func (m *Manager) Pids() ([]int, error) {
	b, err := os.ReadFile(filepath.Join(m.dir, "cgroup.procs"))
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

// Destroy implements cgroups.Manager.
func (m *Manager) Destroy() error {
	var err error
	for i := 0; i < 200; i++ {
		err = os.Remove(m.dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", m.dir, err)
}
