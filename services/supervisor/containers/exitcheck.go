package containers

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"berth/pkg/bus"
	"berth/pkg/errdefs"
)

// checkExitReport refuses an exit report for a container whose init process
// still runs in the container's cgroup: whatever the bus let through (a
// shim's credentials used for another container, a misconfigured external
// server), a report cannot stop the books on a live container, unmount its
// rootfs and free its address. A genuine report comes after its shim has
// reaped the init process, whose pid is then gone; the shim retries a
// refused report, so a false refusal would only delay it.
func (m *Manager) checkExitReport(rep bus.ExitReport) error {
	m.mu.Lock()
	c, ok := m.byID[rep.ID]
	var pids []int
	if ok {
		pids = append(pids, c.rec.State.Pid)
	}
	m.mu.Unlock()
	if !ok {
		return nil
	}
	// the runtime's pid file covers a start still under way (no pid recorded yet)
	if b, err := os.ReadFile(filepath.Join(m.shimDir(rep.ID), bus.ShimInitPidFile)); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			pids = append(pids, pid)
		}
	}
	pids = append(pids, rep.Pid)
	for _, pid := range pids {
		if pid > 0 && runsInCgroup(pid, "/berth/"+rep.ID) {
			m.log.Error("REFUSED an exit report for a container whose init process still runs: forged or misrouted, not applied",
				"id", rep.ID, "pid", pid, "reportedExitCode", rep.ExitCode, "reportedPid", rep.Pid)
			return errdefs.New(errdefs.Conflict, "exit report refused: the init process (pid %d) of container %s still runs in its cgroup", pid, shortID(rep.ID))
		}
	}
	return nil
}

// runsInCgroup reports whether pid is a live process (not a zombie) whose
// cgroup, in any hierarchy, is cg (or under it); the path may have a prefix
// (a supervisor in a cgroup namespace of its own sees its own root).
func runsInCgroup(pid int, cg string) bool {
	if !processAlive(pid) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		// hierarchy-ID:controllers:path
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && (strings.HasSuffix(f[2], cg) || strings.Contains(f[2], cg+"/")) {
			return true
		}
	}
	return false
}
